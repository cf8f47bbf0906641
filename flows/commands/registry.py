"""`doodleflow registry list | show | promote | register`."""

from __future__ import annotations

import argparse
import json

from doodleflow.flows.commands.common import add_json, add_store
from doodleflow.training.registry.refs import KINDS


def register(sub, groups) -> None:
    r = sub.add_parser("registry", help="registered models: list, show, promote, register a picked step")
    rs = r.add_subparsers(dest="action", required=True)
    ls = rs.add_parser("list", help="registered models with their latest version and aliases")
    ls.add_argument("--kind", choices=KINDS, help="only models of this kind")
    add_store(ls)  # where new registrations keep their artifacts (an s3:// store: beside the data)
    add_json(ls)
    ls.set_defaults(func=cmd_list)
    sh = rs.add_parser("show", help="one version's lineage (default: latest)")
    sh.add_argument("name", help="registered model name")
    sh.add_argument("version", nargs="?", type=int, help="version number (default: the latest)")
    add_store(sh)  # where new registrations keep their artifacts (an s3:// store: beside the data)
    add_json(sh)
    sh.set_defaults(func=cmd_show)
    pr = rs.add_parser("promote", help="point an alias (e.g. production) at a version")
    pr.add_argument("name", help="registered model name")
    pr.add_argument("version", type=int, help="version the alias will point at")
    pr.add_argument("--alias", default="production", help="alias to set (NAME@alias loads it)")
    add_store(pr)  # where new registrations keep their artifacts (an s3:// store: beside the data)
    add_json(pr)
    pr.set_defaults(func=cmd_promote)
    rg = rs.add_parser(
        "register",
        help="register a finished or cancelled run's checkpoint at a step you picked (e.g. from its "
        "grid of samples), evaluated and with lineage as a run's own registration",
    )
    rg.add_argument(
        "--run", required=True, help="the training run: FAMILY/RUN (pbe, omnieditor, editlora) or RUN"
    )
    rg.add_argument("--step", required=True, type=int, help="a step with a checkpoint (the error lists them)")
    add_store(rg)
    add_json(rg)
    rg.set_defaults(func=cmd_register)


def open_registry(store: str | None = None):
    from doodleflow.training.registry.registry import Registry

    return Registry(store=store)


def cmd_list(a: argparse.Namespace):
    rows = open_registry(a.store).list(kind=a.kind)
    lines = [
        f"{r['name']:<40} {r['kind']:<16} v{r['latest_version']:<4} "
        + " ".join(f"@{k}=v{v}" for k, v in r["aliases"].items())
        for r in rows
    ]
    return {"models": rows}, "\n".join(lines) or "no registered models"


def cmd_show(a: argparse.Namespace):
    reg = open_registry(a.store).show(a.name, a.version)
    d = reg.to_dict()
    return d, json.dumps({k: v for k, v in d.items() if k != "config"}, indent=2, default=str)


def cmd_promote(a: argparse.Namespace):
    reg = open_registry(a.store).promote(a.name, a.version, a.alias)
    return reg.to_dict(), f"{a.name}@{a.alias} -> version {a.version}"


def cmd_register(a: argparse.Namespace):
    """Checked before Prefect starts (an unknown run or a step without a checkpoint: one line)."""
    from doodleflow.infra.settings import resolve_store
    from doodleflow.training.runs.picked import pick

    store = resolve_store(a.store)
    picked = pick(store, a.run, a.step)
    from doodleflow.flows import prefect_api

    prefect_api.start()
    from doodleflow.flows.register_run import register_run_step

    reg = register_run_step(store, f"{picked.family}/{picked.run.run_id}", a.step)
    text = (
        f"registered {reg['name']}:{reg['version']} from {picked.family}/{picked.run.run_id} at step "
        f"{a.step}\n  files: {reg['uri']}\n  metrics: {reg.get('metrics')}"
    )
    return reg, text
