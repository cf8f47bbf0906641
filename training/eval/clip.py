"""CLIP metrics: PbE's region CLIP score (D1) and PhotoDoodle's CLIP text / CLIP_img scores (D2).

Weights load from a local directory in the Hugging Face layout (`CLIPModel` + tokenizer + image
processor files, e.g. a copy of openai/clip-vit-base-patch32, PbE's ViT-B/32). Images are prepared
as OpenAI CLIP's `preprocess` (shorter side bicubic, centre crop, normalize), with size and
normalization read from the directory's image processor config; the region score has its own input
path, below. Embeddings are the projected ones (`encode_image` / `encode_text`).

`tiny_clip` writes a random tiny CLIP of the same classes for tests and the demo: its scores mean
nothing, but the loading and scoring code path is the real one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from doodleflow.infra.errors import ConfigError
from doodleflow.training.eval.images import (
    CLIP_MEAN,
    CLIP_STD,
    ImageLike,
    batched,
    clip_preprocess,
    normalize,
    to_mask,
    to_pil,
    to_tensor,
)
from PIL import Image


def _quiet_transformers() -> None:
    """Per-file progress bars and config notices would drown the eval task's own log."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _image_processor_class():
    # transformers 5 without torchvision: the PIL backend (CLIPImageProcessor would warn and fall back).
    import transformers

    return getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor


@dataclass
class Clip:
    """A loaded CLIP: model, tokenizer, and the image size / normalization of its processor."""

    model: torch.nn.Module
    tokenizer: Any  # a transformers tokenizer (called on a batch of texts)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    batch_size: int = 32

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalized pixels -> (B, P) projected image embeddings (not unit-norm)."""
        pooled = self.model.vision_model(pixel_values=pixel_values.to(self.device)).pooler_output
        return self.model.visual_projection(pooled).float().cpu()

    def embed_inputs(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """(N, P) embeddings of already prepared (3, S, S) inputs, in batches."""
        chunks = [self.embed_pixels(torch.stack(list(c))) for c in batched(tensors, self.batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.model.config.projection_dim)

    def embed_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """(N, P) image embeddings after OpenAI CLIP's preprocess."""
        return self.embed_inputs([clip_preprocess(im, self.image_size, self.mean, self.std) for im in images])

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, P) text embeddings; texts longer than the context (77 for CLIP) are truncated."""
        max_len = self.model.config.text_config.max_position_embeddings
        out = []
        for chunk in batched(list(texts), self.batch_size):
            tok = self.tokenizer(
                list(chunk), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
            )
            pooled = self.model.text_model(
                input_ids=tok["input_ids"].to(self.device),
                attention_mask=tok["attention_mask"].to(self.device),
            ).pooler_output
            out.append(self.model.text_projection(pooled).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.config.projection_dim)

    def features(self, images: Sequence[ImageLike]) -> np.ndarray:
        """(N, P) float64 un-normalized image embeddings: the features PbE's released FID / QS code
        actually uses (its "Inception" module returns `encode_image`; see quality.py)."""
        return self.embed_images(images).double().numpy()


def load_clip(path: str, device: str | torch.device = "cpu", batch_size: int = 32) -> Clip:
    """Load CLIPModel, tokenizer and image processor settings from the local directory `path`."""
    from transformers import AutoTokenizer, CLIPModel

    _quiet_transformers()
    model = CLIPModel.from_pretrained(path).to(device).eval()
    processor = _image_processor_class().from_pretrained(path)
    crop = processor.crop_size
    size = crop["height"] if isinstance(crop, dict) else crop.height
    if size != model.config.vision_config.image_size:
        raise ConfigError(f"{path}: processor crop {size} != model image_size")
    return Clip(
        model=model,
        tokenizer=AutoTokenizer.from_pretrained(path),
        image_size=int(size),
        mean=tuple(processor.image_mean),
        std=tuple(processor.image_std),
        batch_size=batch_size,
    )


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (F.normalize(a.double(), dim=-1) * F.normalize(b.double(), dim=-1)).sum(-1)


def _summary(scores: torch.Tensor) -> tuple[float, list[float]]:
    values = [float(v) for v in scores]
    return (float(np.mean(values)) if values else float("nan")), values


# ---- D1: Paint-by-Example's region CLIP score (eval_tool/clip_score/region_clip_score.py) ----------


def mask_bbox(mask: ImageLike, threshold: int = 255) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right), inclusive, of the pixels >= `threshold` (or True, for a bool
    mask); None for an empty mask.

    PbE takes the first and last pixel == 255 in raster order; for the benchmark's box masks those are
    the box's top-left and bottom-right corners, which is what this returns for any mask shape.
    """
    arr = to_mask(mask)
    region = arr if arr.dtype == np.bool_ else arr >= threshold
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def crop_to_mask(image: ImageLike, mask: ImageLike, threshold: int = 255) -> torch.Tensor:
    """(3, h, w) [0, 1] crop of `image` to the mask's box, sliced as PbE does; whole image if empty.

    PbE slices `[top:bottom, left:right]` with the inclusive last row/column as the end, so the box's
    last row and column are dropped; kept for parity, except that a one-pixel-thin box keeps its
    single row/column instead of becoming empty. An empty mask warns and scores the whole image.
    """
    x = to_tensor(image)
    if to_mask(mask).shape != tuple(x.shape[1:]):
        raise ValueError(f"mask {to_mask(mask).shape} and image {tuple(x.shape[1:])} sizes differ")
    box = mask_bbox(mask, threshold)
    if box is None:
        warnings.warn("region CLIP score: empty mask, scoring the whole image", stacklevel=2)
        return x
    top, left, bottom, right = box
    return x[:, top : max(bottom, top + 1), left : max(right, left + 1)]


def region_input(crop: torch.Tensor, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """PbE's crop input: torchvision 0.12 `Resize([size, size])` on a tensor (bilinear, no antialias,
    no centre crop). PbE normalizes before resizing; bilinear weights sum to 1, so the order is moot."""
    resized = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return normalize(resized, mean, std)


def reference_input(reference: ImageLike, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """PbE's reference input: PIL `resize((size, size))` (bicubic, no centre crop), then normalize."""
    img = to_pil(reference).resize((size, size), Image.Resampling.BICUBIC)
    return normalize(to_tensor(img), mean, std)


def region_clip_score(
    outputs: Sequence[ImageLike],
    masks: Sequence[ImageLike],
    references: Sequence[ImageLike],
    clip: Clip,
    threshold: int = 255,
) -> tuple[float, list[float]]:
    """PbE's CLIP score: 100 * cos(CLIP(output cropped to the mask box), CLIP(reference)).

    Masks are 255 where the model repainted. Returns (mean over images, per-image scores).
    """
    if not len(outputs) == len(masks) == len(references):
        raise ValueError("outputs, masks and references must have the same length")
    s = clip.image_size
    crops = [
        region_input(crop_to_mask(o, m, threshold), s, clip.mean, clip.std)
        for o, m in zip(outputs, masks, strict=True)
    ]
    refs = [reference_input(r, s, clip.mean, clip.std) for r in references]
    return _summary(100.0 * _cosine(clip.embed_inputs(crops), clip.embed_inputs(refs)))


# ---- D2: PhotoDoodle's CLIP text-image score and CLIP_img ------------------------------------------


def clip_text_score(
    images: Sequence[ImageLike], texts: Sequence[str], clip: Clip
) -> tuple[float, list[float]]:
    """100 * cos(CLIP image embedding, CLIP text embedding) per pair, and the mean.

    The common "CLIP score" of editing papers. CLIPScore proper (Hessel et al. 2021) is
    2.5 * max(cos, 0); which variant PhotoDoodle reports is not stated in a way verified from code.
    """
    if len(images) != len(texts):
        raise ValueError("images and texts must have the same length")
    return _summary(100.0 * _cosine(clip.embed_images(images), clip.embed_texts(texts)))


def clip_img_score(
    images_a: Sequence[ImageLike], images_b: Sequence[ImageLike], clip: Clip
) -> tuple[float, list[float]]:
    """CLIP_img: cos(CLIP(a_i), CLIP(b_i)) in [-1, 1] per pair, and the mean (identical images: 1).

    PhotoDoodle does not say whether b is the source or the target; score both (D2).
    """
    if len(images_a) != len(images_b):
        raise ValueError("image lists must have the same length")
    return _summary(_cosine(clip.embed_images(images_a), clip.embed_images(images_b)))


# ---- tiny preset -----------------------------------------------------------------------------------

TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TINY_VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=224,
    patch_size=32,
)


def tiny_tokenizer():
    """A character-level CLIP tokenizer on the `tokenizers` BPE backend (no merges, no download).

    Each character is a token, with CLIP's `</w>` end-of-word variant; lowercase ASCII, digits and
    punctuation cover the test prompts (CLIP's normalizer lowercases).
    """
    import string

    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def tiny_clip(path: str, seed: int = 0) -> str:
    """Write a random tiny CLIP (model, tokenizer, image processor) to `path`; returns `path`."""
    from transformers import CLIPConfig, CLIPModel

    _quiet_transformers()
    tokenizer = tiny_tokenizer()
    special = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, **special, **TINY_TEXT),
        vision_config=TINY_VISION,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    size = TINY_VISION["image_size"]
    processor = _image_processor_class()(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    os.makedirs(path, exist_ok=True)
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return path
