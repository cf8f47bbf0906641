"""What a PhotoDoodle LoRA step adds to the shared trainer (training/common/trainer.py): FLUX with a
LoRA, its encoders (for streamed pairs), the flow-matching loss, and which weights train (the LoRA).

Pure torch: the Ray job wraps the transformer in DDP through `wrap`; the frozen base is bf16 on GPU
(fp32 on CPU), the LoRA weights and AdamW state fp32, the forward under bf16 autocast on GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from doodleflow.training.common.mfu import count_flops
from doodleflow.training.common.savers import make_optimizer
from doodleflow.training.common.schedule import linear_warmup
from doodleflow.training.common.trainer import Trainer
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.data import PixelPairs, pick_captions
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.lora import add_lora, load_trainable_state_dict, trainable_state_dict
from doodleflow.training.photodoodle.loss import EncodedBatch, flow_matching_loss
from doodleflow.training.photodoodle.model import PhotoDoodleModel


class PhotoDoodleTrainer(Trainer):
    def __init__(
        self,
        model: PhotoDoodleModel,
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
        rank: int = 0,
        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.model, self.cfg, self.rank = model, cfg, rank
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.bf16 = cfg.model.bf16 if cfg.model.bf16 is not None else cuda
        self.savers = cfg.savers(cuda)
        if self.savers.encoders == "cpu":
            model.release_encoders()
        model.to(self.device, torch.bfloat16 if self.bf16 else None)
        self.params = add_lora(model.transformer, cfg.model.lora, seed=cfg.run.seed)
        if self.savers.gradient_checkpointing:
            model.transformer.enable_gradient_checkpointing()
        model.transformer.train()
        self.denoiser = wrap(model.transformer) if wrap else model.transformer
        # A private copy: the sampler's set_timesteps must never change the training sigmas.
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
        self.guidance = cfg.data.guidance if model.guidance_embeds else None
        self.names = {id(p): n for n, p in model.transformer.named_parameters() if p.requires_grad}
        self.optimizer = make_optimizer(self.params, cfg.optim, self.savers, cuda, foreach=cuda)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_warmup(cfg.optim.warmup_steps)
        )
        self.step = 0

    def encode(self, batch: PixelPairs | EncodedBatch, g: torch.Generator) -> EncodedBatch:
        """Streamed pixels -> latents and text embeddings (a cached batch arrives encoded)."""
        if isinstance(batch, EncodedBatch):
            return batch
        with self.autocast():
            captions = pick_captions(batch.captions, g)
            target = self.model.sample_latents(self.model.vae_moments(batch.target), g)
            cond = self.model.sample_latents(self.model.vae_moments(batch.source), g)
            embeds, pooled = self.model.encode_text(captions, self.cfg.data.max_sequence_length)
        # encoders kept on the CPU (--encoders cpu) hand their output over to the device
        return EncodedBatch(target, cond, TextCondition(embeds.to(self.device), pooled.to(self.device)))

    def loss(self, enc: EncodedBatch, g: torch.Generator) -> torch.Tensor:
        with self.autocast():
            return flow_matching_loss(
                self.denoiser, enc, self.scheduler, g, self.cfg.model.condition, self.guidance
            )

    def micro_loss(
        self, batch: PixelPairs | EncodedBatch | Callable[[torch.Generator], EncodedBatch], g: torch.Generator
    ) -> torch.Tensor:
        """`batch` may be a function of the generator (cached batches draw latents and captions with it)."""
        enc = batch(g) if callable(batch) else self.encode(batch, g)
        return self.loss(enc, g)

    def flops_per_sample(self, enc: EncodedBatch) -> int:
        """Model FLOPs of one training sample (transformer forward + backward; LoRA on a frozen base
        is ~2x forward). The encoders are left out: cached runs do not run them."""

        def fwd_bwd():
            self.loss(enc, self.generator(0)).backward()

        flops = count_flops(fwd_bwd)
        self.optimizer.zero_grad(set_to_none=True)
        return flops // max(len(enc), 1)

    # -- checkpoint state: the LoRA only ----------------------------------------------------------
    def trainable_weights(self) -> dict[str, torch.Tensor]:
        return trainable_state_dict(self.model.transformer)

    def load_trainable(self, weights: dict[str, torch.Tensor]) -> None:
        load_trainable_state_dict(self.model.transformer, weights)
