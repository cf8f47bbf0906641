"""What a command pays for Prefect: a small refresh on embedded defaults vs the same refresh against an
already running Prefect server, measured in the same run (issue 14 item 6; target: ratio <= 2).

Each case runs the real CLI (`doodleflow refresh`, a 2-process pool) in a fresh process, on a fresh
dataset name so every run builds the same shards. "server" points PREFECT_API_URL at a server this
benchmark started (and warmed) before timing; "embedded" leaves it unset, so the command starts its
own API (flows/prefect_api.py), shared with its pool workers. Each case gets its own DOODLEFLOW_HOME,
warmed by one untimed run (Prefect's database migrated, as on a user's second run). Rounds alternate
the order; the ratio is taken within each round, then the median.

Run: .venv/bin/python bench/prefect_overhead.py [--images 17] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def refresh(home: str, source: str, dataset: str, api_url: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DOODLEFLOW_"))}
    env["DOODLEFLOW_HOME"] = home
    if api_url:
        env["PREFECT_API_URL"] = api_url
    cmd = [sys.executable, "-m", "doodleflow.flows.cli", "refresh", "--source", source, "--dataset", dataset,
           "--samples-per-shard", "4", "--workers", "2", "--json"]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"refresh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["samples_new"] > 0, summary
    return seconds


def running_server(home: str) -> str:
    """A Prefect API started (and answering) before any timed run: the 'already running server'."""
    os.environ["DOODLEFLOW_HOME"] = home
    os.environ.pop("PREFECT_API_URL", None)
    from doodleflow.flows import prefect_api, runtime  # noqa: F401  (PREFECT_HOME under this home)

    url = prefect_api.start()
    os.environ.pop("PREFECT_API_URL", None)  # the embedded case must not inherit it
    prefect_api.check(url, timeout=300)  # waits in the backlog until the server has booted
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=17)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="doodleflow-prefect-overhead-")
    from doodleflow.data.synthetic import make_source

    source = os.path.join(root, "source")
    make_source(source, args.images, seed=0, size=(640, 480), boxes_per_image=(1, 1))
    homes = {"server": os.path.join(root, "home-server"), "embedded": os.path.join(root, "home-embedded")}
    url = running_server(homes["server"])
    urls = {"server": url, "embedded": None}
    for case in urls:  # untimed warm-up: Prefect's database migrated, caches filled
        refresh(homes[case], source, "warmup", urls[case])
    times: dict[str, list[float]] = {c: [] for c in urls}
    ratios = []
    for r in range(args.rounds):
        order = list(urls) if r % 2 == 0 else list(reversed(urls))
        for case in order:
            times[case].append(refresh(homes[case], source, f"r{r}", urls[case]))
            print(f"round {r} {case:8s} {times[case][-1]:6.1f} s", flush=True)
        ratios.append(times["embedded"][-1] / times["server"][-1])
    med = {c: statistics.median(v) for c, v in times.items()}
    ratio = statistics.median(ratios)
    print(
        f"refresh of {args.images} images, median of {args.rounds} rounds: against a running server "
        f"{med['server']:.1f} s, embedded defaults {med['embedded']:.1f} s, ratio {ratio:.2f}x (target <= 2)"
    )
    print(json.dumps({"server_s": med["server"], "embedded_s": med["embedded"], "ratio": ratio}))


if __name__ == "__main__":
    main()
