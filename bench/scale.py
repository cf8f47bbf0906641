"""Scale benchmark: a refresh on OpenImages-size annotation files, next to the pyarrow read floor.

    python bench/scale.py                              # 1.46M, 4.38M and 14.6M rows (~25 min here)
    python bench/scale.py --rows 1460000               # one size
    python bench/scale.py --rows 1000000 --no-refresh  # planning vs floor only
    python bench/scale.py --listing 200000             # the listing of a 200k-file images root

Sources (bench/scale_data.py): one V6 train CSV of N rows (21 columns, ~8.4 boxes per image, the real
601-class list), 300 real photos present under images/ (the rest not downloaded). Per size:

- floor: `pyarrow.csv.read_csv` of the six columns planning needs (ImageID, LabelName dictionary-encoded,
  coordinates float32), in its own process: seconds and peak RSS. Planning reads coordinates as
  float64 (sample ids hash their exact values), so the floor is the cheaper read.
- plan: `data.plan.plan_inputs` in its own process: seconds, peak RSS. Floor and plan alternate for
  `--rounds` rounds; the ratio is taken within each round (the machine is shared), median reported.
- refresh: `doodleflow refresh` (the CLI, Prefect embedded, local pool) on a fresh store: wall seconds
  and the peak RSS of the whole process tree (CLI, Prefect server, pool workers), sampled every 0.2 s;
  then the unchanged rerun (wall, CLI start-up included; no new version) and the rerun after 10 more
  photos appear (wall, samples built).
Sources are cached under $DOODLEFLOW_HOME/bench/scale-<rows> (default ./.doodleflow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # first: one-thread environment before numpy loads

# isort: split
import psutil

from bench.scale_data import PHOTOS, add_photos, make_tree, present_ids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = (1_460_000, 4_380_000, 14_600_000)
PRESENT = 300
TARGET_PLAN_VS_FLOOR = 3.0
TARGET_PLAN_RSS_GB = 3.0
TARGET_TREE_RSS_GB = 6.0
TARGET_RERUN_S = 30.0
GEN_VERSION = "v1"

FLOOR = """
import json, resource, sys, time
import pyarrow as pa, pyarrow.csv as pacsv
ids = pa.dictionary(pa.int32(), pa.string())
cols = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"]
types = {"ImageID": ids, "LabelName": ids} | {c: pa.float32() for c in cols[2:]}
t0, c0 = time.perf_counter(), time.process_time()
t = pacsv.read_csv(sys.argv[1], read_options=pacsv.ReadOptions(block_size=8 << 20),
                   convert_options=pacsv.ConvertOptions(include_columns=cols, column_types=types))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"s": time.perf_counter() - t0, "rows": t.num_rows, "rss_gb": ru.ru_maxrss / 1e6,
                  "cpu": time.process_time() - c0}))
"""

PLAN = """
import json, resource, sys, time
from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import plan_inputs
t0, c0 = time.perf_counter(), time.process_time()
p = plan_inputs(sys.argv[1], None, CurationConfig())
print(json.dumps({"s": time.perf_counter() - t0, "jobs": len(p.jobs), "absent": p.absent.num_rows,
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "cpu": time.process_time() - c0}))
"""


def home() -> str:
    return os.environ.get("DOODLEFLOW_HOME", os.path.join(os.getcwd(), ".doodleflow"))


def source(rows: int) -> str:
    root = os.path.join(home(), "bench", f"scale-{GEN_VERSION}-{rows}")
    if not os.path.exists(os.path.join(root, ".done")):
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        make_tree(root, rows, PRESENT)
        open(os.path.join(root, ".done"), "w").close()
        print(f"  generated {rows} rows in {time.perf_counter() - t0:.0f}s -> {root}", flush=True)
    return root


def _probe(code: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plan_vs_floor(root: str, rounds: int) -> dict:
    csv = os.path.join(root, "annotations", "oidv6-train-annotations-bbox.csv")
    floors, plans = [], []
    for r in range(rounds):
        pair = [("floor", FLOOR, csv), ("plan", PLAN, root)]
        for name, code, arg in pair if r % 2 == 0 else pair[::-1]:
            (floors if name == "floor" else plans).append(_probe(code, arg))
        f, p = floors[-1], plans[-1]
        print(
            f"  round {r + 1}: floor {f['s']:.1f}s ({f['cpu']:.1f}s CPU), plan {p['s']:.1f}s ({p['cpu']:.1f}s CPU)",
            flush=True,
        )
    return {
        "floor_s": statistics.median(f["s"] for f in floors),
        "floor_rss_gb": max(f["rss_gb"] for f in floors),
        "plan_s": statistics.median(p["s"] for p in plans),
        "plan_rss_gb": max(p["rss_gb"] for p in plans),
        "ratio": statistics.median(p["s"] / f["s"] for p, f in zip(plans, floors, strict=True)),
        "floor_cpu": statistics.median(f["cpu"] for f in floors),
        "plan_cpu": statistics.median(p["cpu"] for p in plans),
        "cpu_ratio": statistics.median(p["cpu"] / f["cpu"] for p, f in zip(plans, floors, strict=True)),
        "jobs": plans[-1]["jobs"],
        "absent": plans[-1]["absent"],
    }


def run_tree(cmd: list[str], env: dict) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GB) of the process and all its descendants, the --json result."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    top, peak = psutil.Process(p.pid), 0
    while p.poll() is None:
        try:
            procs = [top, *top.children(recursive=True)]
            peak = max(peak, sum(_rss(q) for q in procs))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    out = p.stdout.read() if p.stdout else ""
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}")
    return wall, peak / 1e9, json.loads(out.strip().splitlines()[-1])


def _rss(q: psutil.Process) -> int:
    try:
        return q.memory_info().rss
    except psutil.Error:
        return 0


def refreshes(root: str, rows: int) -> dict:
    work = tempfile.mkdtemp(prefix="scale-refresh-")
    env = {**os.environ, "DOODLEFLOW_HOME": os.path.join(work, "home")}
    cli = [os.path.join(os.path.dirname(sys.executable), "doodleflow"), "refresh", "--source", root]
    cli += ["--dataset", "scale", "--store", os.path.join(work, "store"), "--json"]
    out: dict = {}
    try:
        out["first_s"], out["first_tree_gb"], s = run_tree(cli, env)
        out["samples"] = s["samples_total"]
        out["rerun_s"], out["rerun_tree_gb"], s = run_tree(cli, env)
        assert not s["created"] and s["version"] == 1, s
        out["rerun_skipped"] = "skipped" in s
        ids = _ids_without_photo(root)
        added = add_photos(root, ids, split="train_plus")
        try:
            out["plus10_s"], out["plus10_tree_gb"], s = run_tree(cli, env)
            out["plus10_new"] = s["samples_new"]
        finally:
            for p in added:
                os.remove(p)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _ids_without_photo(root: str) -> list[str]:
    """10 ImageIDs of the CSV that have no photo yet (every 997th id from the file's first MB)."""
    csv = os.path.join(root, "annotations", "oidv6-train-annotations-bbox.csv")
    with open(csv) as f:
        f.readline()
        ids = sorted({line.split(",", 1)[0] for line in f.readlines(4 << 20)})
    have = {os.path.splitext(n)[0] for _, _, fs in os.walk(os.path.join(root, "images")) for n in fs}
    return [i for i in present_ids(ids, 40, offset=1) if i not in have][:10]


def listing(n: int) -> str:
    """os.scandir streaming into Arrow (data/listing.py) vs fsspec's find (what planning used before)."""
    from doodleflow.data.fsutil import filesystem
    from doodleflow.data.listing import list_images

    root = os.path.join(home(), "bench", f"listing-{n}")
    if not os.path.exists(os.path.join(root, ".done")):
        for i in range(n):
            d = os.path.join(root, "images", f"train_{i % 16:x}")
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, f"{i:016x}.jpg"), "wb").close()
        open(os.path.join(root, ".done"), "w").close()
    images = os.path.join(root, "images")
    times: dict[str, list[float]] = {"scandir->arrow": [], "fsspec find": []}
    for _ in range(3):
        t0 = time.perf_counter()
        rows = list_images(images).num_rows
        times["scandir->arrow"].append(time.perf_counter() - t0)
        fs, path = filesystem(images)
        t0 = time.perf_counter()
        found = len(fs.find(path, detail=True))
        times["fsspec find"].append(time.perf_counter() - t0)
    assert rows == found == n, (rows, found)
    ours, base = (statistics.median(times[k]) for k in times)
    return f"listing {n} files: scandir->arrow {ours:.2f}s, fsspec find {base:.2f}s ({base / ours:.2f}x)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-refresh", action="store_true", help="planning vs floor only")
    ap.add_argument("--listing", type=int, help="benchmark listing a root of this many files, then exit")
    a = ap.parse_args(argv)
    print(common.machine_line(), f"photos={len(PHOTOS)} real, {PRESENT} present", flush=True)
    if a.listing:
        print(listing(a.listing))
        return 0
    rows_out = []
    for n in a.rows:
        print(f"{n} rows:", flush=True)
        root = source(n)
        m = plan_vs_floor(root, a.rounds)
        if not a.no_refresh:
            m |= refreshes(root, n)
        print("  " + json.dumps(m), flush=True)
        rows_out.append((n, m))
    print(report(rows_out))
    return 0


def report(rows: list[tuple[int, dict]]) -> str:
    head = ["rows", "floor s (CPU)", "plan s (CPU)", "plan/floor wall (CPU)", "plan RSS GB"]
    head += ["first refresh s", "tree RSS GB"]
    head += ["no-change rerun s", "+10 images rerun s (samples)"]
    out = []
    for n, m in rows:
        r = [
            f"{n / 1e6:.2f}M",
            f"{m['floor_s']:.1f} ({m['floor_cpu']:.1f})",
            f"{m['plan_s']:.1f} ({m['plan_cpu']:.1f})",
        ]
        r += [f"{m['ratio']:.2f} ({m['cpu_ratio']:.2f})"]
        r += [f"{m['plan_rss_gb']:.2f}"]
        if "first_s" in m:
            r += [
                f"{m['first_s']:.0f}",
                f"{max(m['first_tree_gb'], m['rerun_tree_gb'], m['plus10_tree_gb']):.2f}",
            ]
            r += [f"{m['rerun_s']:.1f}", f"{m['plus10_s']:.0f} ({m['plus10_new']})"]
        else:
            r += ["-"] * 4
        out.append(r)
    return common.table(head, out)


if __name__ == "__main__":
    sys.exit(main())
