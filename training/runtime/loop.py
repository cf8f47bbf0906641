"""The step loop every trainer shares: resume, train, log, checkpoint, finish. Pure torch; the Ray
jobs supply the batches and the callbacks.

Every worker runs it; rank 0 alone writes to the store and the tracker. Collectives (loss averaging,
the replica check) happen at steps every worker knows, so no worker waits on one that skipped them.
A trainer (training/core/trainer.py) provides: `cfg` (`.run`: steps, log_every, checkpoint_every,
keep_checkpoints, fail_at_step; `.batch_plan(world)`; `.to_dict()`), `step`, `device`,
`train_step(micro_batches)`, `state_tensors()`, `load_state(...)`, `trainable_weights()` (what the
replicas compare), `flops_per_sample(micro_batch)` and `result_extra(final_loss, save_final)`.
Each step takes the batch plan's `accumulation` micro-batches from the stream, so the optimizer
sees the configured global batch whatever the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core import distributed
from doodleflow.training.core.mfu import mfu, peak_flops, peak_memory_gib
from doodleflow.training.runs.lease import check_writer, ray_job_id
from doodleflow.training.runs.metrics import MetricsLog, format_line
from doodleflow.training.runs.plot import loss_curve_png
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime import progress, stop


@dataclass
class WorkerContext:
    rank: int = 0
    world: int = 1
    # Called on every worker at each checkpoint and at the end (ray.train.report in the Ray jobs).
    report: Callable[[dict], None] = field(default=lambda metrics: None)
    log: Callable[[str], None] = print
    # Rank 0, after the last step: save the artifact into the store (returns its card, recorded in result.json).
    save_final: Callable[[object, dict], dict] | None = None
    # Rank 0: where each logged step also goes live (an MLflow run, training/runtime/tracking.py).
    tracker: Any = None  # an object with log(...) and finish(result), or None
    # Rank 0: samples while training (training/runtime/previews.py), built with `resume_step`.
    previews: Callable[[int], Any] | None = None  # resume step -> a Previews (or None: off)


class InjectedFailure(RuntimeError):
    """Raised by `fail_at_step` to prove that a failed worker group recovers."""


def epochs(epoch_batches: Callable[[int], Iterable], start_epoch: int) -> Iterator[tuple[int, object]]:
    """(epoch, batch) forever, asking `epoch_batches(e)` for each epoch's stream; an epoch source
    (training/core/epochs.py) says the epoch itself, so a resumed run records the one it continues."""
    epoch = start_epoch
    while True:
        n = 0
        for batch in epoch_batches(epoch):
            n += 1
            yield getattr(epoch_batches, "epoch", epoch), batch
        if n == 0:
            raise ConfigError("an epoch produced no batch: the dataset is smaller than workers x micro-batch")
        epoch += 1


def maybe_fail(step: int, fail_at, run: RunDir, ctx: WorkerContext) -> None:
    """Kill the last rank once at each step listed in `fail_at` (an int, a list or None)."""
    ats = [fail_at] if isinstance(fail_at, int) else list(fail_at or [])
    if step not in ats or ctx.rank != ctx.world - 1:
        return
    marker = f"faults/fail-at-step-{step:06d}"
    if run.read_bytes(marker) is None:  # once per run, so the restarted group gets past it
        run.write_bytes(marker, b"injected\n")
        raise InjectedFailure(f"injected failure on rank {ctx.rank} at step {step}")


_stop_looked: dict[str, float] = {}


def stop_asked(run: RunDir, rank: int, device: torch.device, every_s: float = 1.0) -> bool:
    """Whether the driver asked the run to stop (stop.json, training/runtime/stop.py): rank 0 looks (at
    most every `every_s`: on S3 a look is a request), and every rank gets its answer, so all of them
    stop after the same step."""
    now = time.monotonic()
    look = rank == 0 and now - _stop_looked.get(run.root, -every_s) >= every_s
    if look:
        _stop_looked[run.root] = now
    flag = 1.0 if look and run.fs.exists(run.path(stop.FILE)) else 0.0
    return distributed.max_across_workers(flag, device) > 0


class StepLoop:
    """One run's steps on one worker; what differs by family is the trainer's (its hooks)."""

    stop_reason: str | None = None  # set when the run stopped on request before its last step

    def __init__(self, trainer, run: RunDir, ctx: WorkerContext) -> None:
        self.t, self.run, self.ctx = trainer, run, ctx
        self.cfg = trainer.cfg.run
        self.batch = trainer.cfg.batch_plan(ctx.world)
        self.global_batch = self.batch.global_batch
        self.resumed = self._resume()
        self.epoch = self.resumed["epoch"] + 1 if self.resumed else 0  # a resumed run starts a fresh epoch
        self.metrics = MetricsLog(run, trainer.step, ctx.tracker) if ctx.rank == 0 else None
        self.flops: int | None = None
        self.peak = peak_flops(trainer.device)
        resume_step = self.resumed["step"] if self.resumed else 0
        self.previews = ctx.previews(resume_step) if ctx.previews and ctx.rank == 0 else None

    # -- the loop ---------------------------------------------------------------------------------
    def _resume(self) -> dict | None:
        """The run's latest complete checkpoint, if any (also how a restarted worker group continues)."""
        step = self.run.latest()
        if step is None:
            return None
        model, optimizer, state = self.run.read_checkpoint(step)
        self.t.load_state(model, optimizer, state)
        self.ctx.log(f"resumed from {self.run.uri(self.run.checkpoint_path(step))} at step {step}")
        return state

    def _record(self, out: dict, data_time: float, step_time: float) -> dict:
        sps = self.global_batch / max(data_time + step_time, 1e-9)
        return {
            "step": self.t.step,
            "epoch": self.epoch,
            "loss": out["loss"],
            "lr": out["lr"],
            "grad_norm": out["grad_norm"],
            "data_time": data_time,
            "step_time": step_time,
            "samples_per_s": sps,
            "mfu": mfu(self.flops, sps, self.peak),
            "peak_mem_gib": peak_memory_gib(self.t.device),
            "time": time.time(),
        }

    def run_steps(self, epoch_batches: Callable[[int], Iterable]) -> dict | None:
        stream = epochs(epoch_batches, self.epoch)
        last = None
        self.sample()  # step 0: the weights before training (or a point lost to a crash)
        while self.t.step < self.cfg.steps:
            t0 = time.perf_counter()
            micro = []
            for _ in range(self.batch.accumulation):
                self.epoch, batch = next(stream)
                micro.append(batch)
            t1 = time.perf_counter()
            if self.flops is None and self.peak:  # MFU is only meaningful on a GPU with a known peak
                self.flops = self.t.flops_per_sample(micro[0])
            out = self.t.train_step(micro)
            if self.t.device.type == "cuda":  # honest step times: wait for the kernels
                torch.cuda.synchronize(self.t.device)
            rec = self._record(out, t1 - t0, time.perf_counter() - t1)
            if self.t.step % self.cfg.log_every == 0 or self.t.step == self.cfg.steps:
                rec["loss"] = distributed.mean_across_workers(rec["loss"], self.t.device)
                last = rec
                if self.metrics is not None:
                    self.metrics.append(rec)
                    self.ctx.log(format_line(rec, self.cfg.steps))
                    progress.record(self.run, rec, self.cfg.steps)  # for the driver, bounded rate
            self.sample()
            at = self.t.step % self.cfg.checkpoint_every == 0 or self.sampling_step(self.t.step)
            if at and self.t.step < self.cfg.steps:
                self.checkpoint(last)
            maybe_fail(self.t.step, self.cfg.fail_at_step, self.run, self.ctx)
            if self.t.step < self.cfg.steps and stop_asked(self.run, self.ctx.rank, self.t.device):
                self.stop_reason = (self.run.read_json(stop.FILE) or {}).get("reason") or "on request"
                break  # training/runtime/stop.py: a clean stop, checkpointed by finish()
        return last

    def sample(self) -> None:
        """Rank 0, when due: the current weights edit the fixed inputs (the others wait at the next
        step's gradient all-reduce); training's RNG, modes and weights are left as they were."""
        if self.previews is not None:
            self.previews.after_step(self.t.step, self.cfg.steps)

    def sampling_step(self, step: int) -> bool:
        """A step whose samples the grid shows: every worker checkpoints there (the same steps on every
        rank), and the checkpoint keeps its weights when pruned, so `registry register --step` finds it."""
        every = self.t.cfg.sample.every
        return every > 0 and step > 0 and step % every == 0

    def checkpoint(self, last: dict | None, extra: dict | None = None) -> str | None:
        uri = None
        if self.ctx.rank == 0:
            model, optimizer, state = self.t.state_tensors()
            state.update(
                epoch=self.epoch,
                samples_seen=self.t.step * self.global_batch,
                world_size=self.ctx.world,
                run_id=self.run.run_id,
                config=self.t.cfg.to_dict(),
                **(extra or {}),
            )
            check_writer(
                self.run, ray_job_id()
            )  # a worker that outlived its driver stops before racing a resumed run
            uri = self.run.write_checkpoint(self.t.step, model, optimizer, state)
            self.run.prune(self.cfg.keep_checkpoints, self.sampling_step)
            self.metrics.flush()
            self.run.write_bytes("loss.png", loss_curve_png(self.metrics.records, self.run.run_id))
        self.ctx.report({"step": self.t.step, "loss": last["loss"] if last else None, "checkpoint": uri})
        return uri

    def finish(self, last: dict | None) -> dict | None:
        """Replica check, final checkpoint (unless resumed at the end already), result.json."""
        digests = distributed.gather_strings(distributed.weights_digest(self.t.trainable_weights()))
        agree = len(set(digests)) == 1
        if not agree:
            self.ctx.log(f"ERROR: worker replicas diverged: {digests}")
        if self.run.latest() != self.t.step:
            self.checkpoint(last, {"replica_digests": digests})
        else:  # every worker reports the same number of times
            self.ctx.report({"step": self.t.step, "loss": last["loss"] if last else None, "checkpoint": None})
        if self.ctx.rank != 0:
            return None
        return self._write_result(digests, agree)

    def _write_result(self, digests: list[str], agree: bool) -> dict:
        stopped = self.stop_reason is not None
        recs = self.metrics.records
        final_loss = recs[-1]["loss"] if recs else None
        speeds = sorted(r["samples_per_s"] for r in recs[1:]) or [0.0]  # step 1 includes warm-up
        result = {
            "run_id": self.run.run_id,
            "run_dir": self.run.uri(),
            "checkpoint": self.run.uri(self.run.checkpoint_path(self.t.step)),
            "steps": self.t.step,
            "final_loss": final_loss,
            "resumed_from": self.resumed["step"] if self.resumed else None,
            "world_size": self.ctx.world,
            "replica_digests": digests,
            "replicas_agree": agree,
            "median_samples_per_s": speeds[len(speeds) // 2],
            "batch": self.batch.params(),
            "flops_per_sample": self.flops,
            "metrics": self.run.uri(self.run.path("metrics.jsonl")),
            "loss_curve": self.run.uri(self.run.path("loss.png")),
            # A stopped run saves no artifact (its LoRA is not the finished one); --resume continues it.
            "status": "cancelled" if stopped else "completed",
            "stop_reason": self.stop_reason,
            **({} if stopped else self.t.result_extra(final_loss, self.ctx.save_final)),
        }
        if self.ctx.tracker is not None:
            self.ctx.tracker.finish(result)
        self.run.write_json("result.json", result)
        return result


def train(trainer, run: RunDir, epoch_batches: Callable[[int], Iterable], ctx: WorkerContext) -> dict | None:
    """Resume if the run has a checkpoint, train to `cfg.run.steps`, and return the result (rank 0;
    after the trainer's `result_extra`, which saves the family's artifact)."""
    loop = StepLoop(trainer, run, ctx)
    last = loop.run_steps(epoch_batches)
    return loop.finish(last)
