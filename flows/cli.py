"""The `doodleflow` command: argument parsing and printing only; the work is in flows/ and data/.

With --json, the last line of stdout is one JSON object (logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

from flows import runtime


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="local path or s3://bucket/prefix (default: $DOODLEFLOW_STORE or "
                   "$DOODLEFLOW_HOME/store)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="doodleflow", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("refresh", help="OpenImages boxes -> Paint-by-Example triples, as a new dataset version")
    r.add_argument("--source", required=True, help="directory or s3:// URI with the CSVs and images/")
    r.add_argument("--dataset", required=True)
    r.add_argument("--images", help="images root, if not <source>/images")
    _add_store(r)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--variants", type=int, default=1)
    r.add_argument("--samples-per-shard", type=int, default=512)
    r.add_argument("--workers", type=int, help="local pool size (default: all cores)")
    r.add_argument("--ray-address", help="run shards on Ray: cluster address, 'auto', or 'local' "
                   "(default: $RAY_ADDRESS, else a local process pool)")
    r.add_argument("--json", action="store_true")

    d = sub.add_parser("datasets", help="list datasets, or the versions of one")
    d.add_argument("name", nargs="?")
    d.add_argument("--version", help="show one version's manifest summary")
    _add_store(d)
    d.add_argument("--json", action="store_true")

    m = sub.add_parser("demo", help="run the main job on embedded defaults with a small bundled sample")
    m.add_argument("--images", type=int, default=24, help="synthetic images to generate")
    _add_store(m)
    m.add_argument("--json", action="store_true")
    return ap


def _emit(obj: dict, as_json: bool, text: str) -> None:
    print(text)
    if as_json:
        print(json.dumps(obj, sort_keys=True, default=str))


def cmd_refresh(a: argparse.Namespace) -> dict:
    from flows.dataset_refresh import dataset_refresh
    from flows.task_runners import make_task_runner

    runner = make_task_runner(a.workers, a.ray_address)
    return dataset_refresh.with_options(task_runner=runner)(
        source=a.source, dataset=a.dataset, store=a.store, images=a.images, seed=a.seed,
        variants=a.variants, samples_per_shard=a.samples_per_shard)


def _refresh_text(s: dict) -> str:
    state = "new version" if s["created"] else "no change, latest version"
    return (f"dataset {s['dataset']}: {state} {s['version']} with {s['samples_total']} samples "
            f"({s['samples_new']} new)\n  path: {s['path']}\n  dropped: {s['dropped']}\n"
            f"  quarantined: {s['quarantined']}")


def cmd_datasets(a: argparse.Namespace) -> dict:
    from data.store import DatasetStore, list_datasets
    from flows.dataset_refresh import resolve_store

    store = resolve_store(a.store)
    if not a.name:
        out = {}
        for n in list_datasets(store):
            ds = DatasetStore(store, n)
            out[n] = {"versions": ds.versions(), "latest": ds.latest()}
        return {"store": store, "datasets": out}
    ds = DatasetStore(store, a.name)
    if a.version:
        m = ds.manifest(ds.resolve(a.version))
        return {k: m[k] for k in ("dataset", "version", "created_at", "rows_total", "samples_new", "dropped",
                                  "quarantined", "config_hash", "content_hash", "parent")} | {
            "path": ds.uri(ds.version_path(m["version"]))}
    return {"dataset": a.name, "versions": [
        {"version": v, "rows": (m := ds.manifest(v))["rows_total"], "new": m["samples_new"],
         "created_at": m["created_at"], "path": ds.uri(ds.version_path(v))} for v in ds.versions()]}


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    from data.errors import InputError

    try:
        if a.command == "refresh":
            s = cmd_refresh(a)
            _emit(s, a.json, _refresh_text(s))
        elif a.command == "datasets":
            out = cmd_datasets(a)
            _emit(out, a.json, json.dumps(out, indent=2, default=str))
        elif a.command == "demo":
            from flows.demo import run_demo

            out = run_demo(a.store, a.images)
            _emit(out, a.json, out.pop("text"))
    except (InputError, LookupError, ValueError) as e:
        print(f"doodleflow {a.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    runtime.configure()
    sys.exit(main())
