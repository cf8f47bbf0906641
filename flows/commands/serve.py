"""`doodleflow serve`: serve the deployments (scheduled refresh, on-demand training) from this process."""

from __future__ import annotations

import argparse

from doodleflow.flows.commands.common import add_store


def register(sub, groups) -> None:
    s = sub.add_parser("serve", help="serve all deployments against the Prefect server at PREFECT_API_URL")
    s.add_argument(
        "--source",
        help="OpenImages source of the nightly refresh (default: "
        "$DOODLEFLOW_OPENIMAGES_SOURCE; without one, no refresh is scheduled)",
    )
    s.add_argument("--dataset", default="openimages-pbe", help="dataset the nightly refresh writes")
    s.add_argument("--cron", default="0 3 * * *", help="schedule of the refresh (UTC)")
    add_store(s)
    s.add_argument("--limit", type=int, help="at most this many flow runs at once (default: no limit)")
    s.set_defaults(func=cmd_serve)


def cmd_serve(a: argparse.Namespace):
    from doodleflow.flows.serve import serve

    serve(a.source, a.dataset, a.cron, a.store, a.limit)
    return {}, "stopped"
