"""The CLI by the conventions its users know: --version, help and defaults on every option, bad
arguments refused in one line (exit 2) before anything starts, light commands that stay light."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest
from doodleflow.flows.cli import _parser, json_safe, main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("prefect", "torch", "ray", "mlflow", "albumentations", "fiftyone", "pyarrow", "pandas")


def _parsers(p: argparse.ArgumentParser, path: str = "doodleflow"):
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _leaf_commands() -> list[str]:
    return [
        path.removeprefix("doodleflow ")
        for path, p in _parsers(_parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
    ]


def test_every_option_has_help():
    missing = [
        f"{path} {'/'.join(a.option_strings) or a.dest}"
        for path, p in _parsers(_parser())
        for a in p._actions
        if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert not missing, "options without help: " + ", ".join(missing)


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["refresh", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "samples per work unit (one Parquet part each) (default: 512)" in out
    assert "(default: None)" not in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and re.fullmatch(r"doodleflow \S+\n", capsys.readouterr().out)


def test_json_has_no_bare_nan():
    res = {"metrics": {"fid": math.nan, "clip": 0.5}, "curve": [1.0, math.inf], "n": 3}
    text = json.dumps(json_safe(res), allow_nan=False)
    assert json.loads(text) == {"metrics": {"fid": None, "clip": 0.5}, "curve": [1.0, None], "n": 3}


def test_every_subcommand_is_in_the_readme():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    missing = [c for c in _leaf_commands() if f"doodleflow {c}" not in readme]
    assert not missing, f"subcommands the README does not show: {missing}"


def _run(args: list[str], home: str) -> tuple[subprocess.CompletedProcess, float, list[str]]:
    """The CLI in a fresh interpreter; returns the process, its wall time and the heavy modules it loaded."""
    code = (
        "import sys; from doodleflow.flows.cli import main; rc = main(sys.argv[1:]);"
        f"print('HEAVY', sorted(set({HEAVY!r}) & set(sys.modules)), file=sys.stderr); sys.exit(rc)"
    )
    env = {**os.environ, "DOODLEFLOW_HOME": home}
    env.pop("PREFECT_API_URL", None)
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    wall = time.perf_counter() - t0
    heavy = re.search(r"HEAVY \[(.*)\]", p.stderr)
    return p, wall, (heavy[1].replace("'", "").split(", ") if heavy and heavy[1] else [])


def _error_lines(p: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if not ln.startswith("HEAVY")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["refresh", "--source", ".", "--dataset", "../evil"], "invalid dataset name '../evil'"),
        (
            ["refresh", "--source", "/no/such/dir", "--dataset", "ok"],
            "--source /no/such/dir: no such directory",
        ),
        (["refresh", "--source", ".", "--dataset", "ok", "--variants", "0"], "--variants must be >= 1"),
        (["refresh", "--source", ".", "--dataset", "ok", "--workers", "0"], "--workers must be >= 1"),
        (["refresh", "--source", ".", "--dataset", "ok", "--store", "ftp://x"], "unsupported URI"),
        (["refresh", "--source", ".", "--dataset", "ok", "--set", "boxes.min_aera=0.1"], "unknown setting"),
        (["datasets", "nosuch"], "no dataset 'nosuch'"),
        (["datasets", "../evil"], "invalid dataset name"),
        (["eval", "--model", "a b"], "invalid model reference"),
        (["eval", "--model", "nosuch"], "no registered model 'nosuch'"),
        (["inspect", "--dataset", "../x", "--no-launch"], "invalid dataset name"),
        (["inspect", "--dataset", "nosuch", "--no-launch"], "dataset 'nosuch' has no version"),
        (["ingest", "pairs", "--source", ".", "--dataset", "../evil"], "invalid dataset name '../evil'"),
        (["ingest", "pairs", "--source", ".", "--dataset", "ok", "--artist", "a/b"], "invalid artist name"),
        (
            ["ingest", "pairs", "--source", "/no/such", "--dataset", "ok"],
            "--source /no/such: no such directory",
        ),
        (["demo", "--images", "0"], "--images must be >= 4"),
        (["serve"], "needs a Prefect server: set PREFECT_API_URL"),
    ],
)
def test_bad_arguments_one_line_before_anything_starts(tmp_path, args, message):
    home = str(tmp_path / "home")
    p, wall, heavy = _run(args, home)
    lines = _error_lines(p)
    assert p.returncode == 2 and len(lines) == 1 and message in lines[0], p.stderr
    assert lines[0].startswith(f"doodleflow {args[0]}: error: ")
    assert heavy == [], f"started {heavy} before refusing"  # no Prefect server, pool, Ray or torch
    assert not os.path.exists(os.path.join(home, "store")) and not os.path.exists(
        os.path.join(home, "prefect")
    )
    assert wall < 10, wall  # ~0.3 s here; the bound leaves room for a loaded machine


@pytest.mark.parametrize("args", [["datasets"], ["registry", "list"]])
def test_light_commands_stay_light(tmp_path, args):
    """`datasets` and `registry list` import none of Prefect, torch, Ray, MLflow, albumentations."""
    p, wall, heavy = _run(args, str(tmp_path / "home"))
    assert p.returncode == 0, p.stderr
    assert heavy == [] and wall < 10, (heavy, wall)


def test_one_cache_flag_one_vocabulary():
    """`--cache auto|on|off` on every command that has a cache (PbE's was --latent-cache auto|build|off)."""
    from doodleflow.training.pbe.config import DataConfig

    caches = {
        path: a.choices
        for path, p in _parsers(_parser())
        for a in p._actions
        if any("cache" in o for o in a.option_strings)
    }
    # `doodleflow plan train` takes the train commands' own flags
    assert set(caches) == {
        "doodleflow train pbe",
        "doodleflow train omnieditor",
        "doodleflow plan train pbe",
        "doodleflow plan train omnieditor",
    }, caches
    assert all(tuple(c) == ("auto", "on", "off") for c in caches.values())
    assert DataConfig(latent_cache="build").latent_cache == "on"  # a checkpoint's saved config still reads
