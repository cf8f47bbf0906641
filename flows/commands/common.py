"""Arguments shared by several commands."""

from __future__ import annotations

import argparse


def add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        help="local path or s3://bucket/prefix (default: $DOODLEFLOW_STORE or $DOODLEFLOW_HOME/store)",
    )


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="end stdout with one JSON object")
