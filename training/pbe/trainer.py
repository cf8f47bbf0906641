"""What a Paint-by-Example step adds to the shared trainer (training/common/trainer.py): the model,
its frozen encoders, the diffusion loss, and which weights train (the UNet and the PbE head).

Pure torch: the Ray job wraps `model.denoiser` in DDP through `wrap`, nothing else changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from doodleflow.training.common.mfu import count_flops
from doodleflow.training.common.savers import make_optimizer
from doodleflow.training.common.schedule import linear_warmup
from doodleflow.training.common.trainer import Trainer
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import PixelBatch
from doodleflow.training.pbe.loss import EncodedBatch, diffusion_loss, encode_batch
from doodleflow.training.pbe.model import PbEModel


def first(batch: PixelBatch | EncodedBatch, n: int) -> PixelBatch | EncodedBatch:
    """The first `n` samples of a batch."""
    return type(batch)(**{f.name: getattr(batch, f.name)[:n] for f in dataclasses.fields(batch)})


class PbETrainer(Trainer):
    def __init__(
        self,
        model: PbEModel,
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
        rank: int = 0,
        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        from diffusers import DDPMScheduler

        self.model, self.cfg, self.rank = model, cfg, rank
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        if cuda:  # whatever still runs in fp32 under bf16 autocast (norms, the optimizer) may use TF32
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else cuda
        self.savers = cfg.savers(cuda)
        if self.savers.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        model.to(self.device)
        model.denoiser.train()
        self.denoiser = wrap(model.denoiser) if wrap else model.denoiser
        d = cfg.diffusion
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=d.num_train_timesteps,
            beta_start=d.beta_start,
            beta_end=d.beta_end,
            beta_schedule=d.beta_schedule,
        )
        self.names = {id(p): n for n, p in model.denoiser.named_parameters()}
        self.params = list(model.denoiser.parameters())
        o = cfg.optim
        self.optimizer = make_optimizer(self.params, o, self.savers, cuda, fused=cuda or None)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_warmup(o.warmup_steps, o.warmup_start_factor)
        )
        self.step = 0

    def encode(self, batch: PixelBatch | EncodedBatch) -> EncodedBatch:
        if isinstance(batch, EncodedBatch):
            return batch
        with self.autocast():
            return encode_batch(self.model, batch)

    def loss(
        self,
        enc: EncodedBatch,
        step: int | torch.Generator,
        denoiser: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """The diffusion loss of an encoded batch; its randomness from `step` (this rank's stream)
        or from a given generator."""
        g = step if isinstance(step, torch.Generator) else self.generator(step)
        with self.autocast():
            return diffusion_loss(
                self.model,
                denoiser or self.denoiser,
                enc,
                self.noise_scheduler,
                g,
                self.cfg.diffusion.cond_drop_prob,
            )

    def flops_per_sample(self, batch: PixelBatch | EncodedBatch) -> int:
        """Model FLOPs of one training sample: 3x the denoiser's forward (forward + the two backward
        GEMMs), plus the frozen encoders' forward when they run in the step (no latent cache)."""
        one = first(batch, 1)
        enc_flops = 0 if isinstance(one, EncodedBatch) else count_flops(lambda: self.encode(one))
        enc = self.encode(one)
        with torch.no_grad():  # the unwrapped module: a DDP forward outside backward confuses its reducer
            fwd = count_flops(lambda: self.loss(enc, 0, denoiser=self.model.denoiser))
        return 3 * fwd + enc_flops

    def micro_loss(self, batch: PixelBatch | EncodedBatch, g: torch.Generator) -> torch.Tensor:
        return self.loss(self.encode(batch), g)

    def trainable_weights(self) -> dict[str, torch.Tensor]:
        return self.model.trainable_state_dict()

    def load_trainable(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_trainable_state_dict({k: v.to(self.device) for k, v in weights.items()})
