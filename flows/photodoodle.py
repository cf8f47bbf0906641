"""PhotoDoodle training flows: the OmniEditor stage (train + merge), one artist on demand, and many
artists in parallel. Wiring only: each flow takes the run's whole config (training/photodoodle/config.py
holds every default; a deployment passes a partial dict of overrides by section), work is in tasks/.

`train_artists` runs one Prefect task per artist, each its own Ray Train job with its own resources,
as many at once as the Ray cluster can place. A failing artist does not stop the others; the run
reports every outcome (result and a Prefect artifact) and ends Failed if any artist failed, with the
per-artist summary attached to the raised `ArtistsFailed`.
"""

from __future__ import annotations

from doodleflow.data.names import validate_name
from doodleflow.data.report import artifact_key
from doodleflow.flows.stopping import cancelled, unless_stopped
from doodleflow.infra.errors import ConfigError, Stopped
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.photodoodle import (
    cluster_slots,
    merge_omnieditor_task,
    train_artist_task,
    train_omnieditor_task,
)
from doodleflow.training.photodoodle.config import TrainConfig, artist_names
from doodleflow.training.runtime import stop
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.states import Failed


class ArtistsFailed(RuntimeError):
    """Some artists failed; `summary` holds every artist's outcome."""

    def __init__(self, message: str, summary: dict) -> None:
        super().__init__(message, summary)
        self.summary = summary

    def __str__(self) -> str:
        return str(self.args[0])


def artist_list(artists: list[str] | str) -> list[str]:
    return artist_names(artists)


def _outcome(fut) -> dict:
    fut.wait()
    if fut.state.is_completed():
        r = fut.result()
        keep = ("lora", "steps", "final_loss", "run_id", "run_dir")
        return {
            "status": "completed",
            **{k: r[k] for k in keep},
            "trigger": r["lora_card"].get("trigger"),
            "_result": r,
        }
    err = fut.result(raise_on_failure=False)
    if isinstance(err, Stopped):
        return {"status": "stopped", "error": str(err), "run_id": err.run_id}
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def _run_bounded(submit, artists: list[str], slots: int) -> dict[str, dict]:
    """Submit at most `slots` artists at a time; start the next as soon as one finishes."""
    pending, outcomes = list(artists), {}
    running: dict = {}
    while pending or running:
        if stop.requested():  # stopping: the artists not started yet are not started
            outcomes.update(
                {a: {"status": "not started", "error": "stopped before it started"} for a in pending}
            )
            pending = []
            if not running:
                break
        while pending and len(running) < slots:
            a = pending.pop(0)
            running[submit(a)] = a
        fut = next(as_completed(list(running)))
        outcomes[running.pop(fut)] = _outcome(fut)
    return {a: outcomes[a] for a in artists}


def _report(outcomes: dict[str, dict], key: str) -> str:
    lines = ["| artist | status | steps | final loss | LoRA / error |", "|---|---|---|---|---|"]
    for a, o in outcomes.items():
        detail = o.get("lora") or o.get("error", "")
        loss = f"{o['final_loss']:.4f}" if o.get("final_loss") is not None else "-"
        lines.append(f"| {a} | {o['status']} | {o.get('steps', '-')} | {loss} | `{detail}` |")
    text = "\n".join(["# PhotoDoodle EditLoRA runs", "", *lines])
    create_markdown_artifact(text, key=artifact_key("editlora", key), description="per-artist outcomes")
    return text


def artist_config(config: TrainConfig, artist: str) -> TrainConfig:
    """One artist's EditLoRA config from the shared one: its pairs come from the dataset named after the
    artist unless `config.run.dataset` names one holding several artists."""
    name = validate_name(artist, "artist name")
    run = {"stage": "editlora", "artist": name, "dataset": config.run.dataset or name}
    return config.replace(run=run).check()


def _stored(config: TrainConfig) -> TrainConfig:
    return config.replace(run={"store": resolve_store(config.run.store or None)})


@flow(name="photodoodle-train-artists")
def train_artists(artists: list[str] | str, config: TrainConfig):
    """One EditLoRA per artist, in parallel, each its own Ray Train job with `config`'s settings."""
    from doodleflow.training.photodoodle.model import prepare_parallel_use
    from doodleflow.training.runtime.ray_utils import init_ray

    logger = get_run_logger()
    names = artist_list(artists)
    config = _stored(config)
    cfgs = {a: artist_config(config, a) for a in names}  # invalid input fails here
    launch, run = config.launch, config.run
    cpus = launch.cpus_per_worker if launch.cpus_per_worker is not None else (4.0 if run.use_gpu else 1.0)
    cfgs = {a: c.replace(launch={"cpus_per_worker": cpus}) for a, c in cfgs.items()}
    workers = max(run.workers, 1)
    per_job = {"CPU": cpus * workers, **({"GPU": float(workers)} if run.use_gpu else {})}
    init_ray(launch.ray_address)  # in the flow's own thread, before the tasks' threads use it
    prepare_parallel_use(config.model.source)
    slots = min(len(names), launch.max_parallel or cluster_slots(per_job, launch.ray_address))
    logger.info(f"{len(names)} artist(s), {slots} at a time, each {workers} worker(s) x {per_job}")

    outcomes = _run_bounded(lambda a: train_artist_task.submit(a, cfgs[a]), names, slots)
    for a, o in outcomes.items():
        r = o.pop("_result", None)
        if r is not None and config.publish.register:
            o["registered"] = _register_artist(r, cfgs[a])
    failed = [a for a, o in outcomes.items() if o["status"] == "failed"]
    done = [a for a in names if outcomes[a]["status"] == "completed"]
    summary = {"artists": outcomes, "completed": done, "failed": failed}
    logger.info(_report(outcomes, "-".join(names)[:40]))
    if stop.requested() and len(done) < len(names):
        return cancelled(_artists_stopped(outcomes, config))
    if failed:
        msg = f"{len(failed)} of {len(names)} artist(s) failed: " + "; ".join(
            f"{a}: {outcomes[a]['error']}" for a in failed
        )
        return Failed(message=msg, data=ArtistsFailed(msg, summary))
    return summary


@flow(name="photodoodle-train-artist")
def train_artist(config: TrainConfig) -> dict:
    """On demand: one artist's EditLoRA (`config.run.artist`; the deployment takes it as a parameter)."""
    if not config.run.artist:
        raise ConfigError("an EditLoRA run needs an artist (--artist, config.run.artist)")
    cfg = artist_config(_stored(config), config.run.artist)
    try:
        r = unless_stopped(train_artist_task(cfg.run.artist, cfg))
    except Stopped as e:  # Ctrl-C, SIGTERM or a cancel in Prefect: checkpointed, --resume continues
        return cancelled(e)
    if cfg.publish.register:
        r["registered"] = _register_artist(r, cfg)
    _report(
        {cfg.run.artist: {"status": "completed", **{k: r[k] for k in ("lora", "steps", "final_loss")}}},
        cfg.run.artist,
    )
    return r


@flow(name="photodoodle-omnieditor")
def omnieditor(config: TrainConfig) -> dict:
    """Stage 1: OmniEditor LoRA on a general editing-pair dataset (Ray Train, DDP), then the merge
    into the base that EditLoRA runs train on."""
    cfg = _stored(config).replace(run={"stage": "omnieditor", "artist": None}).check()
    try:
        r = unless_stopped(train_omnieditor_task(cfg))
    except Stopped as e:
        return cancelled(e)
    out = {**r, "merged_base": None}
    merged = merge_omnieditor_task(cfg.run.store, r["run_id"], cfg, r["lora"]) if cfg.publish.merge else None
    if merged:
        out["merged_base"] = merged["transformer"]
    if cfg.publish.register:
        from doodleflow.flows.registration import register_omnieditor

        out["registered"] = register_omnieditor(cfg.run.store, r, merged, cfg.to_dict())
    return out


def _artists_stopped(outcomes: dict[str, dict], config: TrainConfig) -> Stopped:
    """One Stopped for a parallel run: each artist's state and how to continue it."""
    store = f" --store {config.run.store}" if config.run.store else ""
    lines = [
        f"{a}: {o['status']}"
        + (f"; continue: doodleflow train artist --artist {a} --run-name {o['run_id']} --resume{store}"
           if o.get("run_id") else "")
        for a, o in outcomes.items()
    ]  # fmt: skip
    return Stopped("stopped on request: " + "; ".join(lines))


def _register_artist(result: dict, cfg: TrainConfig) -> dict:
    """Evaluate and register; the lineage's config records the base the LoRA trained on."""
    from doodleflow.flows.registration import evaluate_and_register_artist

    card = result["lora_card"]
    config = {
        **cfg.to_dict(),
        "base": {"trained_on": card.get("trained_on"), "transformer": card.get("base_transformer")},
    }
    return evaluate_and_register_artist(cfg, result, config)
