"""What a PhotoDoodle LoRA step adds to the shared trainer (training/core/trainer.py): FLUX with a
LoRA, its encoders (for streamed pairs), the flow-matching loss, and which weights train (the LoRA).

Pure torch: the Ray job wraps the transformer in DDP through `wrap`; the frozen base is bf16 on GPU
(fp32 on CPU), the LoRA weights and AdamW state fp32, the forward under bf16 autocast on GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from doodleflow.training.core.mfu import count_flops
from doodleflow.training.core.trainer import Trainer
from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.photodoodle.data import PixelPairs, pick_captions
from doodleflow.training.photodoodle.forward import TextCondition
from doodleflow.training.photodoodle.lora import add_lora, load_trainable_state_dict, trainable_state_dict
from doodleflow.training.photodoodle.loss import EncodedBatch, flow_matching_loss
from doodleflow.training.photodoodle.model import PhotoDoodleModel

# A micro-batch as the step gets it: streamed pixels, an encoded batch, or (cached) a function of the
# step's generator.
MicroBatch = PixelPairs | EncodedBatch | Callable[[torch.Generator], EncodedBatch]


class PhotoDoodleTrainer(Trainer):
    model: PhotoDoodleModel
    cfg: TrainConfig

    def prepare(self, model: PhotoDoodleModel) -> torch.nn.Module:
        """The frozen base cast to bf16 on the device, then the LoRA (fp32, its init drawn from the
        run's seed) and checkpointing on the transformer."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        if self.savers.encoders == "cpu":
            model.release_encoders()
        model.to(self.device, torch.bfloat16 if self.bf16 else None)
        add_lora(model.transformer, self.cfg.model.lora, seed=self.cfg.run.seed)
        if self.savers.gradient_checkpointing:
            model.transformer.enable_gradient_checkpointing()
        # A private copy: the sampler's set_timesteps must never change the training sigmas.
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(model.pipe.scheduler.config)
        self.guidance = self.cfg.data.guidance if model.guidance_embeds else None
        return model.transformer

    def optimizer_options(self, cuda: bool) -> dict:
        """foreach AdamW on CUDA: the path training/memplan/gpu.py plans for this family."""
        return {"foreach": cuda}

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

    def encoded(self, batch: MicroBatch, g: torch.Generator) -> EncodedBatch:
        """`batch` may be a function of the generator (cached batches draw latents and captions with it)."""
        return batch(g) if callable(batch) else self.encode(batch, g)

    def micro_loss(self, batch: MicroBatch, g: torch.Generator) -> torch.Tensor:
        return self.loss(self.encoded(batch, g), g)

    def flops_per_sample(self, batch: MicroBatch) -> int:
        """Model FLOPs of one training sample (transformer forward + backward; LoRA on a frozen base
        is ~2x forward). The encoders are left out: cached runs do not run them."""
        enc = self.encoded(batch, self.generator(0))

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

    def result_extra(
        self, final_loss: float | None, save_final: Callable[[object, dict], dict] | None
    ) -> dict:
        """Publish the LoRA (rank 0, after the last step) and name it in result.json."""
        card = save_final(self, {"steps": self.step, "final_loss": final_loss}) if save_final else {}
        run = self.cfg.run
        return {"stage": run.stage, "artist": run.artist, "lora": card.get("uri"), "lora_card": card}
