"""The batch recipe does not change with the number of workers: the config holds the global batch, and
gradient accumulation makes up what the workers do not compute in parallel (issue 12 item 3)."""

from __future__ import annotations

import pytest
import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.batching import batch_plan
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import PixelBatch
from safetensors.torch import load_file, save_file

# AdamW's first step is lr * g / (|g| + eps): with the default eps a gradient entry near 0 turns float
# rounding (the two layouts sum in another order) into a visible weight change. A larger eps makes the
# step linear in such entries, so the weights compare the gradients themselves.
CFG = TrainConfig().replace(
    optim={"lr": 1e-3, "warmup_steps": 0, "eps": 1e-3},
    data={"resolution": 64, "batch_size": 4, "micro_batch": 2},
)


def test_global_batch_splits_into_workers_micro_batches_and_accumulation():
    ref = TrainConfig()  # Paint-by-Example's train.sh: 4 per GPU on 8 GPUs, a global batch of 32
    assert ref.data.batch_size == 32 and ref.optim.lr == 1e-5
    assert ref.batch_plan(8).params() == {"global": 32, "micro": 4, "accumulation": 1, "workers": 8}
    assert ref.batch_plan(1).params() == {"global": 32, "micro": 4, "accumulation": 8, "workers": 1}
    assert ref.batch_plan(0).workers == 1  # local mode is one replica
    assert batch_plan(6, 2, max_micro=4).micro_batch == 3 and batch_plan(12, 1, 2, 4).accumulation == 6
    with pytest.raises(ConfigError, match="--batch-size 32 .* does not split over 3 worker"):
        ref.batch_plan(3)
    with pytest.raises(ConfigError, match="--micro-batch 5 does not divide"):
        batch_plan(32, 2, 5)


def _micro_batches() -> list[PixelBatch]:
    """Two micro-batches of two samples, the same in every process."""
    g = torch.Generator().manual_seed(3)
    r, s = 64, 224  # the tiny CLIP tower takes 224 px references

    def one() -> PixelBatch:
        keep = torch.ones(2, 1, r, r)
        keep[:, :, 16:48, 16:48] = 0
        return PixelBatch(
            torch.rand(2, 3, r, r, generator=g) * 2 - 1, keep, torch.randn(2, 3, s, s, generator=g)
        )

    return [one(), one()]


def _trainer(tiny_dir: str, rank: int = 0, wrap=None):
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.trainer import PbETrainer

    torch.manual_seed(0)
    return PbETrainer(load_pbe_dir(tiny_dir), CFG, "cpu", rank, wrap)


def _ddp_worker(rank: int, tiny_dir: str, init_file: str, out: str) -> None:
    """One of two gloo workers: DDP over the denoiser, one micro-batch each, one optimizer step."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        t = _trainer(tiny_dir, rank, lambda m: torch.nn.parallel.DistributedDataParallel(m))
        loss = t.train_step([_micro_batches()[rank]])["loss"]
        with open(f"{out}.loss{rank}", "w") as f:
            f.write(repr(loss))
        if rank == 0:
            save_file({k: v.contiguous() for k, v in t.trainable_weights().items()}, out)
    finally:
        dist.destroy_process_group()


def test_one_worker_accumulating_two_micro_batches_equals_two_workers(tiny_dir, tmp_path):
    assert CFG.batch_plan(1).accumulation == 2 and CFG.batch_plan(2).accumulation == 1
    out = str(tmp_path / "ddp.safetensors")
    torch.multiprocessing.spawn(_ddp_worker, args=(tiny_dir, str(tmp_path / "init"), out), nprocs=2)
    two_workers = load_file(out)

    one = _trainer(tiny_dir)
    before = {k: v.clone() for k, v in one.trainable_weights().items()}
    rec = one.train_step(_micro_batches())  # 1 worker x 2 accumulation steps
    mine = one.trainable_weights()
    moved = max(float((mine[k] - before[k]).abs().max()) for k in mine)
    worst = max(float((mine[k] - two_workers[k]).abs().max()) for k in mine)
    assert moved > 1e-4  # the step changed the weights (lr 1e-3, AdamW's first step moves ~lr)
    assert worst < 1e-3 * moved, (worst, moved)  # and both layouts changed them alike
    # The step's loss is the mean over the global batch: the two workers' losses averaged.
    per_worker = [float(open(f"{out}.loss{r}").read()) for r in (0, 1)]
    assert rec["loss"] == pytest.approx(sum(per_worker) / 2, rel=1e-5)
