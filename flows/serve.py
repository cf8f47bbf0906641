"""Serve every doodleflow deployment from one process against a Prefect server (`doodleflow serve`).

The same deployments as infra/prefect.yaml, for when a long-running process is simpler than a work
pool: `prefect.serve` polls the server and runs scheduled and on-demand flow runs in subprocesses.
"""

from __future__ import annotations

import os

from doodleflow.data.errors import ConfigError


def deployments(
    source: str | None = None,
    dataset: str = "openimages-pbe",
    cron: str = "0 3 * * *",
    store: str | None = None,
) -> list:
    from doodleflow.flows.dataset_refresh import dataset_refresh
    from doodleflow.flows.fetch_openimages import fetch_openimages
    from doodleflow.flows.photodoodle import omnieditor, train_artist, train_artists
    from doodleflow.flows.photodoodle_ingest import ingest_pairs
    from doodleflow.flows.pipeline import pipeline
    from doodleflow.flows.train_pbe import train_pbe

    store = store or os.environ.get("DOODLEFLOW_STORE")
    common = {"store": store} if store else {}
    training = {"config": {"run": common}} if store else {}  # training flows take one config (by section)
    out = [
        train_pbe.to_deployment(name="train-pbe", parameters=training),
        omnieditor.to_deployment(name="omnieditor", parameters=training),
        train_artist.to_deployment(name="train-artist", parameters=training),
        train_artists.to_deployment(name="train-artists", parameters=training),
        ingest_pairs.to_deployment(name="ingest-pairs", parameters=common),
        pipeline.to_deployment(name="pipeline", parameters={"config": common} if common else {}),
    ]
    source = source or os.environ.get("DOODLEFLOW_OPENIMAGES_SOURCE")
    if source:  # the nightly refresh needs to know what to refresh
        out.append(
            dataset_refresh.to_deployment(
                name="nightly-refresh", cron=cron, parameters={"source": source, "dataset": dataset, **common}
            )
        )
    if source and "://" not in source:  # a fetch writes into a local source
        # On demand: fetch the images the latest version lists as absent; the next refresh builds them.
        fetch = {"dest": source, "split": "train", "absent": dataset, **common}
        out.append(fetch_openimages.to_deployment(name="fetch-openimages", parameters={"config": fetch}))
    return out


def check_serve(dataset: str, store: str | None, limit: int | None) -> None:
    """Before Prefect is imported (seconds): the server to serve against, the names, the limit."""
    from doodleflow.data.names import validate_name
    from doodleflow.infra.settings import prefect_api_url, resolve_store

    if not prefect_api_url():
        raise ConfigError(
            "doodleflow serve needs a Prefect server: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api after `prefect server start`)"
        )
    validate_name(dataset, "dataset name")
    resolve_store(store)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")


def serve(
    source: str | None = None,
    dataset: str = "openimages-pbe",
    cron: str = "0 3 * * *",
    store: str | None = None,
    limit: int | None = None,
) -> None:
    check_serve(dataset, store, limit)
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(source, dataset, cron, store), limit=limit)
