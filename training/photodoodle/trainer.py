"""One PhotoDoodle LoRA optimisation step, and the state a checkpoint needs to continue it.

Pure torch: the Ray job wraps the transformer in DDP through `wrap`; the frozen base is bf16 on GPU
(fp32 on CPU), the LoRA weights and AdamW state fp32, the forward under bf16 autocast on GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from doodleflow.training.common.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from doodleflow.training.common.mfu import count_flops
from doodleflow.training.common.schedule import linear_warmup, optimizer_step
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.data import PixelPairs, pick_captions
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.lora import add_lora, load_trainable_state_dict, trainable_state_dict
from doodleflow.training.photodoodle.loss import EncodedBatch, flow_matching_loss
from doodleflow.training.photodoodle.model import PhotoDoodleModel


def step_generator(device: torch.device, seed: int, rank: int, step: int) -> torch.Generator:
    """All of a step's randomness (caption, latent samples, noise, sigma) from (seed, rank, step):
    a resumed run draws exactly what the uninterrupted one would have."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2**63))
    return g


class PhotoDoodleTrainer:
    def __init__(self, model: PhotoDoodleModel, cfg: TrainConfig, device: torch.device | str = "cpu", rank: int = 0,
                 wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:  # fmt: skip
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.model, self.cfg, self.rank = model, cfg, rank
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else cuda
        model.to(self.device, torch.bfloat16 if self.bf16 else None)
        self.params = add_lora(model.transformer, cfg.model.lora, seed=cfg.run.seed)
        if cfg.model.gradient_checkpointing:
            model.transformer.enable_gradient_checkpointing()
        model.transformer.train()
        self.denoiser = wrap(model.transformer) if wrap else model.transformer
        # A private copy: the sampler's set_timesteps must never change the training sigmas.
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
        self.guidance = cfg.data.guidance if model.guidance_embeds else None
        self.names = {id(p): n for n, p in model.transformer.named_parameters() if p.requires_grad}
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.params, lr=o.lr, betas=o.betas, eps=o.eps,
                                           weight_decay=o.weight_decay, foreach=cuda)  # fmt: skip
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, linear_warmup(o.warmup_steps))
        self.step = 0

    def autocast(self):
        return (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        )

    def generator(self, step: int) -> torch.Generator:
        return step_generator(self.device, self.cfg.run.seed, self.rank, step)

    def encode(self, batch: PixelPairs | EncodedBatch, g: torch.Generator) -> EncodedBatch:
        """Streamed pixels -> latents and text embeddings (a cached batch arrives encoded)."""
        if isinstance(batch, EncodedBatch):
            return batch
        with self.autocast():
            captions = pick_captions(batch.captions, g)
            target = self.model.sample_latents(self.model.vae_moments(batch.target), g)
            cond = self.model.sample_latents(self.model.vae_moments(batch.source), g)
            embeds, pooled = self.model.encode_text(captions, self.cfg.data.max_sequence_length)
        return EncodedBatch(target, cond, TextCondition(embeds, pooled))

    def loss(self, enc: EncodedBatch, g: torch.Generator) -> torch.Tensor:
        with self.autocast():
            return flow_matching_loss(
                self.denoiser, enc, self.scheduler, g, self.cfg.model.condition, self.guidance
            )

    def train_step(
        self, batch: PixelPairs | EncodedBatch | Callable[[torch.Generator], EncodedBatch]
    ) -> dict:
        """Forward, backward, clip, AdamW, LR schedule; returns this step's loss, lr, grad norm.
        `batch` may be a function of the step's generator (cached batches draw latents with it)."""
        g = self.generator(self.step)
        enc = batch(g) if callable(batch) else self.encode(batch, g)
        lr = self.optimizer.param_groups[0]["lr"]
        loss = self.loss(enc, g)
        norm = optimizer_step(self, loss)
        self.step += 1
        return {"loss": float(loss.detach()), "lr": lr, "grad_norm": norm}

    def flops_per_sample(self, enc: EncodedBatch) -> int:
        """Model FLOPs of one training sample (transformer forward + backward; LoRA on a frozen base
        is ~2x forward). The encoders are left out: cached runs do not run them."""

        def fwd_bwd():
            self.loss(enc, self.generator(0)).backward()

        flops = count_flops(fwd_bwd)
        self.optimizer.zero_grad(set_to_none=True)
        return flops // max(len(enc), 1)

    # -- checkpoint state ---------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
        opt, meta = optimizer_to_tensors(self.optimizer, self.names)
        return trainable_state_dict(self.model.transformer), opt, {"optimizer": meta}

    def load_state(
        self, model: dict[str, torch.Tensor], optimizer: dict[str, torch.Tensor], state: dict
    ) -> None:
        load_trainable_state_dict(self.model.transformer, model)
        optimizer_from_tensors(self.optimizer, self.names, optimizer, state["optimizer"])
        self.step = int(state["step"])
        sched = self.lr_schedule  # a pure function of the step: set it instead of storing it
        sched.last_epoch = self.step
        sched._last_lr = []
        for group, base, fn in zip(
            self.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True
        ):
            group["lr"] = base * fn(self.step)
            sched._last_lr.append(group["lr"])
