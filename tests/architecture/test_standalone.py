"""The repository stands alone: no doc, code or test points at files outside it."""

from __future__ import annotations

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDERS = ("data", "tasks", "training", "flows", "infra", "bench", "tests", "docs")
# Notes that live beside the checkout on the machine this was written on, not in the repository.
OUTSIDE = re.compile(
    r"shared/(reference|realdata)|\.\./shared|seed-algorithms|performance-and-style|stack\.md"
)


def _files():
    yield os.path.join(REPO, "README.md")
    for folder in FOLDERS:
        for root, _dirs, files in os.walk(os.path.join(REPO, folder)):
            for f in files:
                if f.endswith((".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh")):
                    yield os.path.join(root, f)


def test_nothing_points_outside_the_repository():
    me = os.path.abspath(__file__)
    hits = [
        f"{os.path.relpath(path, REPO)}:{n}: {line.strip()[:100]}"
        for path in _files()
        if path != me
        for n, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_cited_labels_are_defined_in_the_repository():
    """Labels such as (B4) or (C4, C5) name a paper's behaviour and its official file in docs/references.md."""
    defined = set(
        re.findall(r"^\| ([A-D][1-7]) \|", open(os.path.join(REPO, "docs", "references.md")).read(), re.M)
    )
    assert {"A1", "B4", "C7", "D2"} <= defined
    cited = {
        label
        for path in _files()
        for group in re.findall(
            r"\(([A-D][1-7](?:(?:-|, ?)[A-D]?[1-7])*)\)", open(path, errors="replace").read()
        )
        for label in re.findall(r"[A-D][1-7]", group)
    }
    assert cited and cited <= defined, (
        f"cited but not defined in docs/references.md: {sorted(cited - defined)}"
    )
