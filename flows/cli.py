"""doodleflow: data-and-training pipeline for Paint-by-Example and PhotoDoodle.

Argument parsing and printing only; the work is in flows/ (wiring) and data/, training/ (library).
With --json, the last line of stdout is one JSON object (logs go to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys

from doodleflow.flows import runtime  # noqa: F401  (environment defaults first)

COMMAND_MODULES = [
    "doodleflow.flows.commands.curation",
    "doodleflow.flows.commands.inspect",
    "doodleflow.flows.commands.registry",
    "doodleflow.flows.commands.evaluate",
    "doodleflow.flows.commands.serve",
    "doodleflow.flows.commands.pbe",
    "doodleflow.flows.commands.photodoodle",
]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="doodleflow", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    groups = {
        name: sub.add_parser(name, help=help_).add_subparsers(dest="target", required=True)
        for name, help_ in (("train", "train a model"), ("generate", "run a trained model"))
    }
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub, groups)
    return ap


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a real command (not a test calling main): its processes die with it
        from doodleflow.flows import processes

        processes.install()
    a = _parser().parse_args(argv)
    from doodleflow.infra.errors import DoodleflowError

    try:
        result, text, *then = a.func(a)
    except DoodleflowError as e:  # a user's error: one line; anything else is a bug and keeps its traceback
        print(f"doodleflow {a.command}: error: {e}", file=sys.stderr)
        return 2
    print(text)
    if getattr(a, "json", False):
        print(json.dumps(result, sort_keys=True, default=str), flush=True)
    for wait in then:  # e.g. a served App: runs after the result is printed, until interrupted
        with contextlib.suppress(KeyboardInterrupt):
            wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
