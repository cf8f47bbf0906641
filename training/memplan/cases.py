"""The CPU check's cases (training/memplan/cpu_check.py): each family at tiny size and at a medium one
(full width, one or two blocks, fp32: a bf16 step of that width is too slow on this CPU)."""

from __future__ import annotations

from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER

# FLUX.1-dev's width (3072, 24 heads, T5 4096) with one double and one single block.
FLUX_MEDIUM = {**FLUX_DEV_TRANSFORMER, "num_layers": 1, "num_single_layers": 1}
# SD1's first two UNet levels at full width (320, 640), one cross-attention level.
UNET_MEDIUM = dict(
    sample_size=16, in_channels=9, out_channels=4, layers_per_block=1, block_out_channels=(320, 640),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8,
)  # fmt: skip


def _photodoodle(arch: dict, height: int, width: int, text: int):
    def build():
        from doodleflow.training.memplan.families import build_photodoodle
        from doodleflow.training.photodoodle.config import TrainConfig

        cfg = TrainConfig.for_stage("editlora", "tiny").replace(
            model={"bf16": False}, data={"height": height, "width": width, "max_sequence_length": text}
        )
        return build_photodoodle(cfg, arch, on_gpu=False, cached=True)

    return build


def _pbe(unet: dict, resolution: int, micro: int):
    def build():
        from doodleflow.training.memplan.families import build_pbe
        from doodleflow.training.pbe.config import TrainConfig
        from doodleflow.training.pbe.presets import TINY_CLIP, TINY_VAE

        cfg = TrainConfig().replace(
            model={"bf16": False, "gradient_checkpointing": False},
            data={"resolution": resolution, "batch_size": micro, "micro_batch": micro},
        )
        return build_pbe(cfg, (unet, TINY_VAE, TINY_CLIP), on_gpu=False, cached=True)

    return build


def _tiny_flux():
    from doodleflow.training.photodoodle.presets import TINY_TRANSFORMER

    return TINY_TRANSFORMER


def _tiny_unet():
    from doodleflow.training.pbe.presets import TINY_UNET

    return TINY_UNET


CASES = {
    "photodoodle-tiny": lambda: _photodoodle(_tiny_flux(), 96, 64, 32)(),
    "photodoodle-medium": _photodoodle(FLUX_MEDIUM, 192, 128, 64),
    "pbe-tiny": lambda: _pbe(_tiny_unet(), 64, 2)(),
    "pbe-medium": _pbe(UNET_MEDIUM, 128, 2),
}
