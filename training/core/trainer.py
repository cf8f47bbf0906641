"""What every trainer shares: the set-up (device, precision, memory savers, DDP wrap, AdamW, warm-up
schedule), the step's random stream, the optimizer step with gradient accumulation, and the checkpoint
state (trainable weights, optimizer, schedule). Pure torch.

A family's trainer subclasses `Trainer` and says only what differs: how its model goes on the device
and which module trains (`prepare`), how a micro-batch becomes a loss (`micro_loss`), which weights a
checkpoint keeps (`trainable_weights` / `load_trainable`), and, where it must, the hooks below
(`tf32`, `optimizer_options`, `flops_per_sample`, `result_extra`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence

import torch
from doodleflow.training.core.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from doodleflow.training.core.savers import make_optimizer
from doodleflow.training.core.schedule import linear_warmup


def step_generator(device: torch.device, seed: int, index: int, step: int) -> torch.Generator:
    """All of a micro-batch's randomness (noise, timesteps, latent samples, captions, condition drop)
    from (seed, micro-batch index, step). The index is global (rank x accumulation + k), so one worker
    accumulating two micro-batches draws what two workers draw, and a resumed run draws exactly what the
    uninterrupted one would have. With one micro-batch per worker the index is the rank."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + index * 7_919 + step) % (2**63))
    return g


def restore_schedule(schedule, step: int) -> None:
    """Set a LambdaLR to `step`: the schedule is a pure function of the step, so it is recomputed
    rather than stored. One `step()` from `step - 1` sets the groups' lr and the scheduler's own record."""
    schedule.last_epoch = step - 1
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        schedule.step()


class Trainer:
    step: int = 0
    # TF32 for what still runs in fp32 on CUDA (a process-wide switch): on where the family's reference
    # trained with it.
    tf32: bool = False

    def __init__(
        self,
        model,
        cfg,
        device: torch.device | str = "cpu",
        rank: int = 0,
        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        """bf16 autocast by default on CUDA only; the savers (training/core/memory.py) as the config
        resolves them for this device; `wrap` (DDP in the Ray jobs) around the module that trains, after
        `prepare` put it on the device; AdamW over its trainable parameters in module order, and the
        linear warm-up."""
        self.model, self.cfg, self.rank = model, cfg, rank
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda and self.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else cuda
        self.savers = cfg.savers(cuda)
        module = self.prepare(model)
        module.train()
        self.denoiser = wrap(module) if wrap else module
        trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = {id(p): n for n, p in trainable}
        self.params = [p for _, p in trainable]
        o = cfg.optim
        self.optimizer = make_optimizer(self.params, o, self.savers, cuda, **self.optimizer_options(cuda))
        # an optim section without a start factor (PhotoDoodle's) warms up from linear_warmup's default
        start = {"start_factor": o.warmup_start_factor} if hasattr(o, "warmup_start_factor") else {}
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_warmup(o.warmup_steps, **start)
        )
        self.step = 0

    # -- what a family provides -----------------------------------------------------------------
    def prepare(self, model) -> torch.nn.Module:
        """Put the model on `self.device` as the run trains it (dtype, adapters, gradient checkpointing
        per `self.savers`) and return the module that trains (the one DDP wraps). Runs after `device`,
        `bf16` and `savers` are set, before anything else."""
        raise NotImplementedError

    def micro_loss(self, batch, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_trainable(self, weights: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def flops_per_sample(self, batch) -> int:
        """Model FLOPs of one training sample of a micro-batch as the step gets it (for MFU)."""
        raise NotImplementedError

    # -- what a family may change ---------------------------------------------------------------
    def optimizer_options(self, cuda: bool) -> dict:
        """torch AdamW's implementation: the fused kernel on CUDA."""
        return {"fused": cuda or None}

    def result_extra(
        self, final_loss: float | None, save_final: Callable[[object, dict], dict] | None
    ) -> dict:
        """Rank 0, after the last step of a run that was not stopped: what the family adds to
        result.json (`save_final`: the job's callback that saves the trained artifact into the store, or None)."""
        return {}

    # -- shared ------------------------------------------------------------------------------------
    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def generator(self, step: int, index: int | None = None) -> torch.Generator:
        return step_generator(self.device, self.cfg.run.seed, self.rank if index is None else index, step)

    def train_step(self, batch) -> dict:
        """One optimizer step over this worker's micro-batches (a list; a single batch is one micro-batch):
        each loss is scaled by 1/len so the accumulated gradient is the mean, gradients are reduced across
        workers once (DDP's no_sync on the earlier micro-batches), then clip, AdamW and the LR schedule.
        Returns the step's mean loss, the lr it used and the pre-clip gradient norm."""
        micro: Sequence = batch if isinstance(batch, list) else [batch]
        n = len(micro)
        lr = float(self.optimizer.param_groups[0]["lr"])  # a tensor in torchao's optimizers
        total = 0.0
        for k, b in enumerate(micro):
            sync = k == n - 1 or not hasattr(self.denoiser, "no_sync")
            with contextlib.nullcontext() if sync else self.denoiser.no_sync():
                loss = self.micro_loss(b, self.generator(self.step, self.rank * n + k)) / n
                loss.backward()
            total += float(loss.detach())
        norm = self.apply_gradients()
        self.step += 1
        return {"loss": total, "lr": lr, "grad_norm": norm}

    def apply_gradients(self) -> float:
        """Clip (grad_clip <= 0: measure only), AdamW, advance the schedule, zero the gradients."""
        clip = self.cfg.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
        """(trainable weights, optimizer tensors, JSON state) for a checkpoint."""
        opt, meta = optimizer_to_tensors(self.optimizer, self.names)
        return self.trainable_weights(), opt, {"optimizer": meta}

    def load_state(
        self, model: dict[str, torch.Tensor], optimizer: dict[str, torch.Tensor], state: dict
    ) -> None:
        self.load_trainable(model)
        optimizer_from_tensors(self.optimizer, self.names, optimizer, state["optimizer"])
        self.step = int(state["step"])
        restore_schedule(self.lr_schedule, self.step)
