"""Wall time of the light commands, each in a fresh interpreter, against the same command on the path it
replaced, measured in the same run, interleaved round by round:

- `registry list`: MLflow's SQLite tables read directly (no MLflow import) vs `MlflowClient` (the
  `_list_mlflow` path every `registry list` took before);
- `datasets`: the command as it is vs the same listing after importing what it used to import
  (Prefect, torch and albumentations came in with `resolve_store`).

    .venv/bin/python bench/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "registry list (SQLite read)": "from doodleflow.flows.cli import main; main(['registry', 'list'])",
    "registry list via MlflowClient (before)": (
        "from doodleflow.training.registry.registry import Registry; print(Registry()._list_mlflow(None))"
    ),
    "datasets": "from doodleflow.flows.cli import main; main(['datasets'])",
    "datasets + prefect, torch, albumentations (before)": (
        "import prefect, torch, albumentations; from doodleflow.flows.cli import main; main(['datasets'])"
    ),
}


def _home() -> str:
    """A home with three registered models and one dataset version, so both listings have rows."""
    home = tempfile.mkdtemp(prefix="bench-cli-")
    code = (
        "import os; from doodleflow.training.registry.registry import Registry\n"
        "r = Registry()\n"
        "for i, kind in enumerate(('pbe-checkpoint', 'editlora', 'merged-base')):\n"
        "    d = os.path.join(os.environ['DOODLEFLOW_HOME'], f'a{i}'); os.makedirs(d)\n"
        "    open(os.path.join(d, 'w.bin'), 'wb').write(b'x')\n"
        "    r.register(f'm{i}', kind, d, config={})\n"
        "from doodleflow.data.store import DatasetStore\n"
        "DatasetStore(os.path.join(os.environ['DOODLEFLOW_HOME'], 'store'), 'ds').commit(1, {'version': 1})\n"
    )
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "DOODLEFLOW_HOME": home}, check=True)
    return home


def _time(code: str, home: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DOODLEFLOW_HOME": home},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    rounds = ap.parse_args().rounds
    home = _home()
    names = list(CASES)
    walls: dict[str, list[float]] = {n: [] for n in names}
    try:
        for r in range(rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
                walls[n].append(_time(CASES[n], home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"{rounds} rounds, load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    for fast, slow in ((names[0], names[1]), (names[2], names[3])):
        ratio = statistics.median(s / f for f, s in zip(walls[fast], walls[slow], strict=True))
        print(f"{fast:<52} median {statistics.median(walls[fast]):.2f} s")
        print(f"{slow:<52} median {statistics.median(walls[slow]):.2f} s   ({ratio:.1f}x slower)")


if __name__ == "__main__":
    main()
