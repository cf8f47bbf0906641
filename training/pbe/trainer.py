"""What a Paint-by-Example step adds to the shared trainer (training/core/trainer.py): the model,
its frozen encoders, the diffusion loss, and which weights train (the UNet and the PbE head).

Pure torch: the Ray job wraps `model.denoiser` in DDP through `wrap`, nothing else changes.
"""

from __future__ import annotations

import dataclasses

import torch
from doodleflow.training.core.mfu import count_flops
from doodleflow.training.core.trainer import Trainer
from doodleflow.training.pbe.config import TrainConfig
from doodleflow.training.pbe.data import PixelBatch
from doodleflow.training.pbe.loss import EncodedBatch, diffusion_loss, encode_batch
from doodleflow.training.pbe.model import PbEModel


def first(batch: PixelBatch | EncodedBatch, n: int) -> PixelBatch | EncodedBatch:
    """The first `n` samples of a batch."""
    return type(batch)(**{f.name: getattr(batch, f.name)[:n] for f in dataclasses.fields(batch)})


class PbETrainer(Trainer):
    model: PbEModel
    cfg: TrainConfig
    # Its reference trained on torch 1.11 (Paint-by-Example environment.yaml:9), whose CUDA matmuls
    # defaulted to TF32: what still runs in fp32 under bf16 autocast (norms, the optimizer) may use it.
    tf32 = True

    def prepare(self, model: PbEModel) -> torch.nn.Module:
        """The whole denoiser (UNet + PbE head) trains, in fp32 weights; the DDPM noise schedule of
        the diffusion section."""
        from diffusers import DDPMScheduler

        if self.savers.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        model.to(self.device)
        d = self.cfg.diffusion
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=d.num_train_timesteps,
            beta_start=d.beta_start,
            beta_end=d.beta_end,
            beta_schedule=d.beta_schedule,
        )
        return model.denoiser

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
