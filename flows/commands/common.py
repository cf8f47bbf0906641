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


def add_dataset(p: argparse.ArgumentParser, required: bool = False, help: str = "dataset name") -> None:
    p.add_argument(
        "--dataset",
        required=required,
        help=f"{help}: 1-64 letters, digits, '_', '-' or '.' (`doodleflow datasets` lists them)",
    )


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same result")
