"""PhotoDoodle training flows: the OmniEditor stage (train + merge), one artist on demand, and many
artists in parallel. Wiring only: configs come from training/photodoodle/options.py, work from tasks/.

`train_artists` runs one Prefect task per artist, each its own Ray Train job with its own resources,
as many at once as the Ray cluster can place. A failing artist does not stop the others; the run
reports every outcome (result and a Prefect artifact) and ends Failed if any artist failed, with the
per-artist summary attached to the raised `ArtistsFailed`.
"""

from __future__ import annotations

from doodleflow.data.names import validate_name
from doodleflow.data.report import artifact_key
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.photodoodle import (
    cluster_slots,
    merge_omnieditor_task,
    train_artist_task,
    train_omnieditor_task,
)
from doodleflow.training.photodoodle.options import RunOptions, build_config
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
    names = artists.split(",") if isinstance(artists, str) else list(artists)
    out = [validate_name(a.strip(), "artist name") for a in names if a.strip()]
    if not out:
        raise ConfigError("--artists: no artist given")
    return list(dict.fromkeys(out))  # de-duplicated, in the given order


def _options(store: str, dataset: str, **kw) -> RunOptions:
    return RunOptions(store=resolve_store(store), dataset=dataset, **kw)


def _outcome(fut) -> dict:
    fut.wait()
    if fut.state.is_completed():
        r = fut.result()
        return {"status": "completed", "lora": r["lora"], "steps": r["steps"], "final_loss": r["final_loss"],
                "run_id": r["run_id"], "run_dir": r["run_dir"], "trigger": r["lora_card"].get("trigger"),
                "_result": r}  # fmt: skip
    err = fut.result(raise_on_failure=False)
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def _run_bounded(submit, artists: list[str], slots: int) -> dict[str, dict]:
    """Submit at most `slots` artists at a time; start the next as soon as one finishes."""
    pending, running, outcomes = list(artists), {}, {}
    while pending or running:
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


@flow(name="photodoodle-train-artists")
def train_artists(artists: list[str] | str, dataset: str | None = None, store: str | None = None,
                  preset: str = "tiny", pretrained: str | None = None, base: str | None = None, steps: int = 500,
                  rank: int | None = None, alpha: float | None = None, position_mode: str = "clone",
                  workers: int = 1, use_gpu: bool = False, cpus_per_worker: float | None = None,
                  max_failures: int = 1, max_parallel: int | None = None, seed: int = 0, resume: bool = False,
                  ray_address: str | None = None, register_model: bool = True, evaluate: bool = True):  # fmt: skip
    """One EditLoRA per artist, in parallel. Each artist's pairs come from the dataset named after
    the artist, unless `dataset` names one holding several artists."""
    from doodleflow.training.common.ray_utils import init_ray
    from doodleflow.training.photodoodle.model import prepare_parallel_use

    logger = get_run_logger()
    names = artist_list(artists)
    opts = _options(store, dataset or names[0], preset=preset, pretrained=pretrained, base=base, steps=steps,
                    rank=rank, alpha=alpha, position_mode=position_mode, workers=workers, use_gpu=use_gpu,
                    seed=seed, resume=resume)  # fmt: skip
    cfgs = {
        a: build_config("editlora", opts.with_artist(a, dataset or a)) for a in names
    }  # invalid input fails here
    cpus = cpus_per_worker if cpus_per_worker is not None else (4.0 if use_gpu else 1.0)
    per_job = {"CPU": cpus * workers, **({"GPU": float(workers)} if use_gpu else {})}
    init_ray(ray_address)  # in the flow's own thread, before the tasks' threads use it
    prepare_parallel_use(cfgs[names[0]].model.source)
    slots = min(len(names), max_parallel or cluster_slots(per_job, ray_address))
    logger.info(f"{len(names)} artist(s), {slots} at a time, each {workers} worker(s) x {per_job}")

    def submit(a: str):
        return train_artist_task.submit(a, cfgs[a], ray_address, cpus, max_failures)

    outcomes = _run_bounded(submit, names, slots)
    for a, o in outcomes.items():
        r = o.pop("_result", None)
        if r is not None and register_model:
            o["registered"] = _register_artist(opts.store, r, cfgs[a], evaluate)
    failed = [a for a, o in outcomes.items() if o["status"] == "failed"]
    summary = {"artists": outcomes, "completed": [a for a in names if a not in failed], "failed": failed}
    logger.info(_report(outcomes, "-".join(names)[:40]))
    if failed:
        msg = f"{len(failed)} of {len(names)} artist(s) failed: " + "; ".join(
            f"{a}: {outcomes[a]['error']}" for a in failed
        )
        return Failed(message=msg, data=ArtistsFailed(msg, summary))
    return summary


@flow(name="photodoodle-train-artist")
def train_artist(artist: str, dataset: str | None = None, store: str | None = None, preset: str = "tiny",
                 pretrained: str | None = None, base: str | None = None, steps: int = 500, rank: int | None = None,
                 alpha: float | None = None, position_mode: str = "clone", workers: int = 1, use_gpu: bool = False,
                 cpus_per_worker: float | None = None, max_failures: int = 1, seed: int = 0, resume: bool = False,
                 ray_address: str | None = None, register_model: bool = True, evaluate: bool = True) -> dict:  # fmt: skip
    """On demand: one artist's EditLoRA (the deployment takes the artist and the dataset)."""
    name = validate_name(artist, "artist name")
    opts = _options(store, dataset or name, artist=name, preset=preset, pretrained=pretrained, base=base,
                    steps=steps, rank=rank, alpha=alpha, position_mode=position_mode, workers=workers,
                    use_gpu=use_gpu, seed=seed, resume=resume)  # fmt: skip
    cfg = build_config("editlora", opts)
    r = train_artist_task(name, cfg, ray_address, cpus_per_worker, max_failures)
    if register_model:
        r["registered"] = _register_artist(opts.store, r, cfg, evaluate)
    _report({name: {"status": "completed", **{k: r[k] for k in ("lora", "steps", "final_loss")}}}, name)
    return r


@flow(name="photodoodle-omnieditor")
def omnieditor(dataset: str, store: str | None = None, preset: str = "tiny", pretrained: str | None = None,
               steps: int = 1000, rank: int | None = None, alpha: float | None = None, position_mode: str = "clone",
               workers: int = 1, use_gpu: bool = False, cpus_per_worker: float | None = None, max_failures: int = 2,
               cache: str | None = None, seed: int = 0, resume: bool = False, merge: bool = True,
               ray_address: str | None = None, register_model: bool = True) -> dict:  # fmt: skip
    """Stage 1: OmniEditor LoRA on a general editing-pair dataset (Ray Train, DDP), then the merge
    into the base that EditLoRA runs train on."""
    opts = _options(store, dataset, preset=preset, pretrained=pretrained, steps=steps, rank=rank, alpha=alpha,
                    position_mode=position_mode, workers=workers, use_gpu=use_gpu, seed=seed, resume=resume,
                    cache=cache)  # fmt: skip
    cfg = build_config("omnieditor", opts)
    r = train_omnieditor_task(cfg, ray_address, cpus_per_worker, max_failures)
    out = {**r, "merged_base": None}
    merged = merge_omnieditor_task(opts.store, r["run_id"], cfg, r["lora"]) if merge else None
    if merged:
        out["merged_base"] = merged["transformer"]
    if register_model:
        from doodleflow.flows.registration import register_omnieditor

        out["registered"] = register_omnieditor(opts.store, r, merged, cfg.to_dict())
    return out


def _register_artist(store: str, result: dict, cfg, evaluate: bool) -> dict:
    from doodleflow.flows.registration import evaluate_and_register_artist

    return evaluate_and_register_artist(store, result, cfg.to_dict(), evaluate)
