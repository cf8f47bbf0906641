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
