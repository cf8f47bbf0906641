"""The step loop: resume, train, log, checkpoint, finish. Pure torch; the Ray job supplies batches.

Every worker runs this function; rank 0 alone writes to the store. Collectives (loss averaging,
the replica check) happen at steps every worker knows, so no worker waits on one that skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch

from training.common import distributed
from training.common.metrics import MetricsLog, format_line
from training.common.mfu import mfu, peak_flops, peak_memory_gib
from training.common.plot import loss_curve_png
from training.common.rundir import RunDir
from training.pbe.trainer import PbETrainer


@dataclass
class WorkerContext:
    rank: int = 0
    world: int = 1
    # Called on every worker at each checkpoint and at the end (ray.train.report in the Ray job).
    report: Callable[[dict], None] = field(default=lambda metrics: None)
    log: Callable[[str], None] = print


class InjectedFailure(RuntimeError):
    """Raised by `RunConfig.fail_at_step` to prove that a failed worker group recovers."""


def epochs(epoch_batches: Callable[[int], Iterable], start_epoch: int) -> Iterator[tuple[int, object]]:
    """(epoch, batch) forever, asking `epoch_batches(e)` for each epoch's stream."""
    epoch = start_epoch
    while True:
        n = 0
        for batch in epoch_batches(epoch):
            n += 1
            yield epoch, batch
        if n == 0:
            raise ValueError("an epoch produced no batch: the dataset is smaller than workers x batch size")
        epoch += 1


def resume(trainer: PbETrainer, run: RunDir, log: Callable[[str], None]) -> dict | None:
    """Load the run's latest complete checkpoint, if any (also how a restarted worker group continues)."""
    step = run.latest()
    if step is None:
        return None
    model, optimizer, state = run.read_checkpoint(step)
    trainer.load_state(model, optimizer, state)
    log(f"resumed from {run.uri(run.checkpoint_path(step))} at step {step}")
    return state


def _maybe_fail(trainer: PbETrainer, run: RunDir, ctx: WorkerContext) -> None:
    ats = trainer.cfg.run.fail_at_step
    ats = [ats] if isinstance(ats, int) else list(ats or [])
    if trainer.step not in ats or ctx.rank != ctx.world - 1:
        return
    at = trainer.step
    marker = f"faults/fail-at-step-{at:06d}"
    if run.read_bytes(marker) is None:  # once per run, so the restarted group gets past it
        run.write_bytes(marker, b"injected\n")
        raise InjectedFailure(f"injected failure on rank {ctx.rank} at step {at}")


class Loop:
    def __init__(self, trainer: PbETrainer, run: RunDir, ctx: WorkerContext) -> None:
        self.t, self.run, self.ctx = trainer, run, ctx
        self.cfg = trainer.cfg.run
        self.global_batch = trainer.cfg.data.batch_size * ctx.world
        self.state = resume(trainer, run, ctx.log)
        self.epoch = self.state["epoch"] + 1 if self.state else 0  # a resumed run starts a fresh epoch
        self.metrics = MetricsLog(run, trainer.step) if ctx.rank == 0 else None
        self.flops: int | None = None
        self.peak = peak_flops(trainer.device)

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

    def _sync(self) -> None:
        if self.t.device.type == "cuda":
            torch.cuda.synchronize(self.t.device)

    def run_steps(self, epoch_batches: Callable[[int], Iterable]) -> dict | None:
        stream = epochs(epoch_batches, self.epoch)
        last = None
        while self.t.step < self.cfg.steps:
            t0 = time.perf_counter()
            self.epoch, batch = next(stream)
            t1 = time.perf_counter()
            if self.flops is None and self.peak:
                self.flops = self.t.flops_per_sample(batch)
            out = self.t.train_step(batch)
            self._sync()
            rec = self._record(out, t1 - t0, time.perf_counter() - t1)
            if self.t.step % self.cfg.log_every == 0 or self.t.step == self.cfg.steps:
                rec["loss"] = distributed.mean_across_workers(rec["loss"], self.t.device)
                last = rec
                if self.metrics is not None:
                    self.metrics.append(rec)
                    self.ctx.log(format_line(rec, self.cfg.steps))
            if self.t.step % self.cfg.checkpoint_every == 0 and self.t.step < self.cfg.steps:
                self.checkpoint(last)
            _maybe_fail(self.t, self.run, self.ctx)
        return last

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
            uri = self.run.write_checkpoint(self.t.step, model, optimizer, state)
            self.run.prune(self.cfg.keep_checkpoints)
            self.metrics.flush()
            self.run.write_bytes("loss.png", loss_curve_png(self.metrics.records, self.run.run_id))
        self.ctx.report({"step": self.t.step, "loss": last["loss"] if last else None, "checkpoint": uri})
        return uri

    def finish(self, last: dict | None) -> dict | None:
        """Replica check, final checkpoint (unless resumed at the end already), result.json."""
        digests = distributed.gather_strings(distributed.weights_digest(self.t.model.trainable_state_dict()))
        agree = len(set(digests)) == 1
        if not agree:
            self.ctx.log(f"ERROR: worker replicas diverged: {digests}")
        if self.run.latest() != self.t.step:
            self.checkpoint(last, {"replica_digests": digests})
        else:
            self.ctx.report({"step": self.t.step, "loss": last["loss"] if last else None, "checkpoint": None})
        if self.ctx.rank != 0:
            return None
        return self._write_result(digests, agree)

    def _write_result(self, digests: list[str], agree: bool) -> dict:
        recs = self.metrics.records
        speeds = sorted(r["samples_per_s"] for r in recs[1:]) or [0.0]  # step 1 includes warm-up
        result = {
            "run_id": self.run.run_id,
            "run_dir": self.run.uri(),
            "checkpoint": self.run.uri(self.run.checkpoint_path(self.t.step)),
            "steps": self.t.step,
            "final_loss": recs[-1]["loss"] if recs else None,
            "resumed_from": self.state["step"] if self.state else None,
            "world_size": self.ctx.world,
            "replica_digests": digests,
            "replicas_agree": agree,
            "median_samples_per_s": speeds[len(speeds) // 2],
            "flops_per_sample": self.flops,
            "metrics": self.run.uri(self.run.path("metrics.jsonl")),
            "loss_curve": self.run.uri(self.run.path("loss.png")),
        }
        self.run.write_json("result.json", result)
        return result


def train(trainer: PbETrainer, run: RunDir, epoch_batches: Callable[[int], Iterable], ctx: WorkerContext):
    """Resume if the run has a checkpoint, train to `cfg.run.steps`, and return the result (rank 0)."""
    loop = Loop(trainer, run, ctx)
    last = loop.run_steps(epoch_batches)
    return loop.finish(last)
