"""The whole pipeline as one flow.

    refresh -> latent cache -> Paint-by-Example training -> evaluation -> registration   (FiftyOne optional)
    pair ingest -> OmniEditor -> merge -> EditLoRA per artist -> evaluation -> registration

Each training stage is keyed by (its dataset version's content hash, its settings), and each artist is
its own stage keyed on its own pairs: a stage whose key already has a record in the store is skipped,
so a nightly run with no new data costs seconds and new pairs for one artist retrain that artist only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from doodleflow.data.fsutil import atomic_write, filesystem, join
from doodleflow.data.store import DatasetStore
from doodleflow.flows.dataset_refresh import dataset_refresh
from doodleflow.flows.photodoodle import omnieditor, train_artists
from doodleflow.flows.photodoodle_ingest import ingest_pairs
from doodleflow.flows.train_pbe import train_pbe
from doodleflow.infra.settings import resolve_store
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.pbe.config import model_source
from doodleflow.training.photodoodle.config import TrainConfig as DoodleConfig
from prefect import flow, get_run_logger


def _stage_path(store: str, stage: str, dataset: str, settings: dict, version: int | None = None) -> str:
    """Where a stage's record lives: keyed by the content hash of `dataset` at `version` (default:
    its latest) and the stage's settings."""
    ds = DatasetStore(store, dataset)
    content = ds.manifest(ds.latest() if version is None else version)["content_hash"]
    key = hashlib.sha256(json.dumps([content, settings], sort_keys=True, default=str).encode()).hexdigest()[
        :20
    ]
    return join(filesystem(store)[1], "pipeline", stage, f"{key}.json")


def _stage(store: str, stage: str, dataset: str, settings: dict, run) -> dict:
    """Run `run()` unless this stage already ran on the same data with the same settings."""
    log = get_run_logger()
    fs, _ = filesystem(store)
    path = _stage_path(store, stage, dataset, settings)
    if fs.exists(path):
        log.info(f"{stage}: inputs unchanged since the recorded run, skipped")
        return {**json.loads(fs.cat_file(path)), "skipped": True}
    out = run()
    if isinstance(out, dict):
        atomic_write(fs, path, json.dumps(out, default=str).encode())
    return {**out, "skipped": False} if isinstance(out, dict) else out


def _artist_stages(store: str, versions: dict[str, int], settings: dict, train) -> dict:
    """One stage per artist, keyed by that artist's own pairs version and the settings: only the
    artists whose key has no record are trained (together, by `train(names)`, in parallel), so new
    pairs for one artist retrain that artist only."""
    log, (fs, _) = get_run_logger(), filesystem(store)
    paths = {a: _stage_path(store, "artist", a, {**settings, "artist": a}, v) for a, v in versions.items()}
    done = {a: json.loads(fs.cat_file(p)) for a, p in paths.items() if fs.exists(p)}
    todo = [a for a in versions if a not in done]
    for a in done:
        log.info(f"artist {a}: pairs unchanged since the recorded run, skipped")
    trained = train(todo)["artists"] if todo else {}
    for a, outcome in trained.items():
        if outcome.get("status") != "failed":
            atomic_write(fs, paths[a], json.dumps(outcome, default=str).encode())
    artists = {
        a: {**done[a], "skipped": True} if a in done else {**trained[a], "skipped": False} for a in versions
    }
    return {"artists": artists, "trained": todo, "skipped": sorted(done)}


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline's inputs and settings, handed whole to the flow (`doodleflow demo` builds
    one). A source left out skips its branch; a setting left None takes its family config's default."""

    openimages_source: str | None = None  # OpenImages boxes -> the PbE branch
    pairs_source: str | None = None  # general editing pairs -> OmniEditor
    artists_source: str | None = None  # one folder per artist (30-50 before/after pairs each)
    artists: list[str] | None = None  # default: every folder in artists_source
    store: str | None = None
    pbe_dataset: str = "openimages-pbe"
    pairs_dataset: str = "editing-pairs"
    preset: str = "tiny"
    pbe_steps: int | None = None
    omnieditor_steps: int | None = None
    artist_steps: int | None = None
    eval_steps: int | None = None
    eval_samples: int | None = None
    pbe_config: dict | None = None  # PbE config overrides by section
    curation: dict | None = None  # the refresh's CurationConfig settings by section (data/config.py)
    fiftyone: bool = False
    workers: int = 1
    ray_address: str | None = None
    # Encode the new version's VAE latents and CLIP tokens once and train from them; not part of the
    # stage key: the cache changes the speed, not what is learned.
    latent_cache: bool = True


@flow(name="pipeline")
def pipeline(config: PipelineConfig | None = None) -> dict:
    """refresh -> latent cache -> PbE, pairs -> OmniEditor, artists -> EditLoRAs; unchanged stages skip."""
    c = config or PipelineConfig()
    store = resolve_store(c.store)
    # Settings every training stage shares; what is not given here takes the family config's default.
    common = {
        "run": {"store": store, "workers": c.workers, "resume": True},
        "launch": {"ray_address": c.ray_address},
    }
    out: dict = {"store": store}
    if c.openimages_source:
        out.update(_pbe_branch(c, store, common))
    if c.pairs_source:
        out.update(_omnieditor_branch(c, store, common))
    if c.artists_source:
        out.update(_artists_branch(c, store, common, out.get("omnieditor", {}).get("merged_base")))
    return out


def _pbe_branch(c: PipelineConfig, store: str, common: dict) -> dict:
    refresh = dataset_refresh(
        source=c.openimages_source,
        dataset=c.pbe_dataset,
        store=store,
        config=c.curation,
        update_fiftyone=c.fiftyone,
    )
    overrides = c.pbe_config or {}
    if c.latent_cache:
        overrides = {**overrides, "data": {**overrides.get("data", {}), "latent_cache": "on"}}
    cfg = pbe_run_config(
        overrides,
        c.preset,
        run={"dataset": c.pbe_dataset, "version": refresh["version"], "steps": c.pbe_steps},
        common=common,
        publish={"eval_samples": c.eval_samples, "eval_steps": c.eval_steps},
    )
    settings = {
        "preset": c.preset,
        "steps": c.pbe_steps,
        "config": c.pbe_config,
        "eval": [c.eval_steps, c.eval_samples],
    }
    return {"refresh": refresh, "pbe": _stage(store, "pbe", c.pbe_dataset, settings, lambda: train_pbe(cfg))}


def _omnieditor_branch(c: PipelineConfig, store: str, common: dict) -> dict:
    pairs = ingest_pairs(source=c.pairs_source, dataset=c.pairs_dataset, store=store, artist=None)
    cfg = doodle_run_config(
        c.preset, {"stage": "omnieditor", "dataset": c.pairs_dataset, "steps": c.omnieditor_steps}, common
    )
    settings = {"preset": c.preset, "steps": c.omnieditor_steps}
    return {
        "pairs": pairs,
        "omnieditor": _stage(store, "omnieditor", c.pairs_dataset, settings, lambda: omnieditor(cfg)),
    }


def _artists_branch(c: PipelineConfig, store: str, common: dict, merged_base: str | None) -> dict:
    fs, root = filesystem(c.artists_source)
    artists = c.artists or sorted(
        p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False) if fs.isdir(p)
    )
    out = {
        f"pairs-{a}": ingest_pairs(source=join(c.artists_source, a), dataset=a, store=store, artist=a)
        for a in artists
    }
    if artists:
        settings = {"preset": c.preset, "steps": c.artist_steps, "base": merged_base}
        cfg = doodle_run_config(c.preset, {"steps": c.artist_steps}, common)
        versions = {a: out[f"pairs-{a}"]["version"] for a in artists}
        out["artists"] = _artist_stages(store, versions, settings, lambda names: train_artists(names, cfg))
    return out


def _given(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def pbe_run_config(overrides: dict, preset: str, run: dict, common: dict, publish: dict) -> PbEConfig:
    """The PbE stage's config: the family's defaults, the pipeline's overrides by section, then its settings."""
    d = {k: dict(v) for k, v in overrides.items()}
    d.setdefault("run", {}).update({**common["run"], **_given(run)})
    d.setdefault("publish", {}).update(_given(publish))
    d.setdefault("launch", {}).update(common["launch"])
    d["model"] = {"source": dataclasses.asdict(model_source(preset if preset != "flux-dev" else None))}
    return PbEConfig.from_dict(d)


def doodle_run_config(preset: str, run: dict, common: dict) -> DoodleConfig:
    """A PhotoDoodle stage's config: the family's defaults and the pipeline's settings."""
    return DoodleConfig.from_dict(
        {
            "model": {"source": {"preset": preset}},
            "run": {**common["run"], **_given(run)},
            "launch": common["launch"],
        }
    )
