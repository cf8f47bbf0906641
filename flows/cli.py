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
from doodleflow.flows.commands.common import json_safe

COMMAND_MODULES = [
    "doodleflow.flows.commands.curation",
    "doodleflow.flows.commands.fetch",
    "doodleflow.flows.commands.inspect",
    "doodleflow.flows.commands.registry",
    "doodleflow.flows.commands.evaluate",
    "doodleflow.flows.commands.serve",
    "doodleflow.flows.commands.pbe",
    "doodleflow.flows.commands.photodoodle",
    "doodleflow.flows.commands.plan",
]


class _Parser(argparse.ArgumentParser):
    """Subcommand parsers are made with the parent's class, so every one of them gets the formatter."""

    def __init__(self, *args, **kwargs) -> None:
        from doodleflow.flows.commands.options import DefaultsHelp

        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("doodleflow")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="doodleflow", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"doodleflow {_version()}")
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
        from doodleflow.flows import interrupt, processes

        rc = interrupt.supervise()  # Ctrl-C reaches only this process, which stops the command cleanly
        if rc is not None:
            return rc
        interrupt.install_stop_handler()
        processes.install()
        from doodleflow.training.runtime.logs import quiet_libraries

        quiet_libraries()  # library noise to $DOODLEFLOW_HOME/logs/, no colour codes when redirected
    a = _parser().parse_args(argv)
    from doodleflow.flows import environment
    from doodleflow.infra.errors import DoodleflowError, Stopped

    if a.command == "train":  # a stop signal asks the run to stop at a step boundary (flows/interrupt.py)
        from doodleflow.flows.stopping import quiet_cancelled_tasks
        from doodleflow.training.runtime import stop

        stop.enable()
        quiet_cancelled_tasks()
    try:
        environment.check(a)  # an s3:// store answers before any work starts
        result, text, *then = a.func(a)
    except Stopped as e:  # stopped on request, checkpointed: say how to continue (exit 130, as Ctrl-C)
        from doodleflow.flows.interrupt import resume_hint

        print(f"doodleflow {a.command}: {e}", file=sys.stderr)
        if e.run_id:
            print(f"  continue with: {resume_hint(a, e.run_id)}", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # a user's error or the environment's: one line; a bug keeps its traceback
        err = e if isinstance(e, DoodleflowError) else environment.user_error(e)
        if err is None:
            raise
        print(f"doodleflow {a.command}: error: {err}", file=sys.stderr)
        return 2
    print(text)
    if getattr(a, "json", False):
        print(json.dumps(json_safe(result), sort_keys=True, default=str, allow_nan=False), flush=True)
    for wait in then:  # e.g. a served App: runs after the result is printed, until interrupted
        with contextlib.suppress(KeyboardInterrupt):
            wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
