"""Which of the repository's own modules one `doodleflow refresh` and one `doodleflow train pbe` load,
in the driver and in every process it starts (Prefect pool workers, Ray workers): the "What one train
pbe and one refresh touch" table of docs/architecture.md (issue 20).

    .venv/bin/python -m bench.files_touched            # markdown on stdout
    .venv/bin/python -m bench.files_touched --keep DIR # and keep the run's store and per-process lists

How: each command runs as a user runs it (a subprocess of the real CLI, on a tiny synthetic source and
the tiny PbE preset, one Ray Train worker so the worker's imports count) with a `sitecustomize.py` put
first on PYTHONPATH. Every Python process started under it (the CLI, the Prefect server, Ray's raylet
workers, pool workers: they inherit the environment) installs an audit hook on the `import` event and
appends each `doodleflow.*` module it loads to `<dir>/<pid>.txt` as it loads it. Written as it goes,
not at exit: Ray ends its workers without running atexit handlers. This is what runs, not what could:
a static import closure from the CLI would list every command's modules (flows/cli.py registers them
all) and every function-level import whether its branch runs or not.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "DOODLEFLOW_TRACE_IMPORTS"
# Tiny and quick, but the whole path: one Ray Train worker, evaluation and registration.
TRAIN = [
    *("train", "pbe", "--dataset", "touched", "--steps", "2", "--checkpoint-every", "2", "--workers", "1"),
    *(
        "--resolution",
        "64",
        "--batch-size",
        "2",
        "--sample-every",
        "0",
        "--eval-samples",
        "1",
        "--eval-steps",
        "2",
    ),
]
SITECUSTOMIZE = f'''
import os, sys
_dir = os.environ.get("{ENV}")
if _dir:
    _seen = set()
    _path = os.path.join(_dir, f"{{os.getpid()}}.txt")

    def _hook(event, args):
        if event == "import" and args[0].startswith("doodleflow") and args[0] not in _seen:
            _seen.add(args[0])
            with open(_path, "a") as f:
                if len(_seen) == 1:
                    f.write("#argv " + " ".join(sys.orig_argv[1:4]) + "\\n")
                f.write(args[0] + "\\n")

    sys.addaudithook(_hook)
'''


def _run(args: list[str], trace: str, env: dict, log: str) -> float:
    os.makedirs(trace, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "doodleflow.flows.cli", *args],
            env={**env, ENV: trace},
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            timeout=1800,
        )
    if proc.returncode != 0:
        with open(log) as f:
            sys.exit(f"doodleflow {' '.join(args[:2])} failed (exit {proc.returncode}):\n{f.read()[-3000:]}")
    return time.perf_counter() - t0


def _role(argv: str) -> str:
    """What a process is, from its interpreter's own command line (`sys.orig_argv`)."""
    if "default_worker.py" in argv:
        return "ray worker"
    if "doodleflow.flows.cli" in argv:
        return "cli"
    return "pool worker" if "multiprocessing" in argv else "other"


def _processes(trace: str) -> dict[str, list[set[str]]]:
    """role (cli, pool worker, ray worker, other) -> the module sets of its processes."""
    roles: dict[str, list[set[str]]] = collections.defaultdict(list)
    for name in sorted(os.listdir(trace)):
        with open(os.path.join(trace, name)) as f:
            lines = f.read().splitlines()
        argv = lines[0].removeprefix("#argv ") if lines and lines[0].startswith("#argv") else ""
        role = _role(argv)
        roles[role].append({m for m in lines[1:] if m})
    return roles


def _files(modules: set[str]) -> set[str]:
    """Module names -> repository files (a package -> its __init__.py); the top package is not a file."""
    out = set()
    for m in modules:
        parts = m.split(".")[1:]
        if not parts:
            continue
        base = os.path.join(REPO, *parts)
        out.add("/".join(parts) + ("/__init__.py" if os.path.isdir(base) else ".py"))
    return out


def markdown(title: str, roles: dict[str, list[set[str]]]) -> str:
    driver = set().union(*roles.get("cli", [set()]))
    workers = set().union(*(m for r, ps in roles.items() if r != "cli" for m in ps))
    files = _files(driver | workers)
    only_workers = _files(workers) - _files(driver)
    by_folder: dict[str, list[str]] = collections.defaultdict(list)
    for f in sorted(files):
        by_folder[os.path.dirname(f) or "."].append(os.path.basename(f))
    procs = ", ".join(f"{len(ps)} {r}" for r, ps in sorted(roles.items()))
    lines = [
        f"**{title}**: {len(files)} files in {procs} process(es); {len(_files(driver))} in the CLI's "
        f"process(es), {len(_files(workers))} in the others, {len(only_workers)} only there (marked *)",
        "",
        "| folder | files | modules |",
        "|---|---:|---|",
    ]
    for d in sorted(by_folder):
        names = [n.removesuffix(".py") + ("*" if f"{d}/{n}" in only_workers else "") for n in by_folder[d]]
        lines.append(f"| `{d}/` | {len(names)} | `{', '.join(names)}` |")
    return "\n".join(lines)


def counts_table(commit: str, runs: dict[str, dict[str, list[set[str]]]]) -> str:
    """Files per folder, one column per command: paste it beside an earlier commit's columns."""
    per = {}
    for title, roles in runs.items():
        files = _files(set().union(*(m for ps in roles.values() for m in ps)))
        per[title] = collections.Counter(os.path.dirname(f) for f in files)
    folders = sorted(set().union(*per.values()))
    head = " | ".join(f"{t} ({commit})" for t in per)
    lines = [f"| folder | {head} |", "|---|" + "---:|" * len(per)]
    lines += [f"| `{d}/` | " + " | ".join(str(per[t][d] or "") for t in per) + " |" for d in folders]
    lines.append("| **all** | " + " | ".join(f"**{sum(per[t].values())}**" for t in per) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", help="keep the run's home (store, logs, per-process lists) here")
    a = p.parse_args(argv)
    home = a.keep or tempfile.mkdtemp(prefix="files-touched-")
    site = os.path.join(home, "site")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "RAY_ADDRESS", "DOODLEFLOW_STORE")
    }
    env.update(DOODLEFLOW_HOME=home, PREFECT_HOME=os.path.join(home, "prefect"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site, env.get("PYTHONPATH")]))
    from doodleflow.data.synthetic import make_source

    src, store = os.path.join(home, "source"), os.path.join(home, "store")
    make_source(src, 8, seed=0, size=(640, 480), boxes_per_image=(1, 1))
    refresh = ["refresh", "--source", src, "--dataset", "touched", "--store", store]
    train = [*TRAIN, "--store", store]
    t_refresh = _run(refresh, os.path.join(home, "trace-refresh"), env, os.path.join(home, "refresh.log"))
    t_train = _run(
        [*train, "--store", store], os.path.join(home, "trace-train"), env, os.path.join(home, "train.log")
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    commit = commit.stdout.strip()
    runs = {"refresh": _processes(os.path.join(home, "trace-refresh")),
            "train pbe": _processes(os.path.join(home, "trace-train"))}  # fmt: skip
    print(f"Measured at commit {commit} by `python -m bench.files_touched` "
          f"(refresh {t_refresh:.0f} s, train pbe {t_train:.0f} s).\n")  # fmt: skip
    print(counts_table(commit, runs) + "\n")
    print(markdown("`doodleflow refresh` (8 synthetic images)", runs["refresh"]) + "\n")
    print(markdown("`doodleflow train pbe` (tiny, 2 steps, 1 Ray Train worker, evaluated and registered)",
                   runs["train pbe"]))  # fmt: skip
    if a.keep:
        print(f"\n(kept in {home})", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
