"""Architectures as data: the tiny FLUX preset (tests, demo, CPU bench) and the full-size FLUX.1-dev
transformer (GPU bench, random weights).

The tiny preset keeps every structural feature of FLUX.1-dev: a double- and a single-stream block,
64 input channels (16 latent channels x 2x2 patches), guidance embedding, 3-axis RoPE, a 16-channel
8x-downsampling VAE with shift and scale, a CLIP text tower for the pooled vector and a T5 encoder
for the sequence. It is saved as a diffusers FLUX directory (tokenizers included, built in code since
none can be downloaded) and loaded back through the same `from_pretrained` path as real weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import string

import torch
from doodleflow.training.core.hf import quiet_hf
from doodleflow.training.runs.atomic_dir import build_atomically

TINY_TRANSFORMER = dict(
    patch_size=1,
    in_channels=64,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    guidance_embeds=True,
    axes_dims_rope=(4, 6, 6),  # sums to the head dim, as (16, 56, 56) does for 128
)
# 4 blocks = 8x downsampling as FLUX's VAE; FLUX's scaling and shift factors.
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    block_out_channels=(8, 8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    norm_num_groups=4,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    sample_size=96,
)
TINY_CLIP_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=32,
)
TINY_T5 = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
# FLUX.1-dev's scheduler config (use_dynamic_shifting: mu from the image sequence length).
SCHEDULER = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)
# diffusers' FluxTransformer2DModel defaults are FLUX.1-[schnell]; dev adds the guidance embedding.
FLUX_DEV_TRANSFORMER = dict(
    patch_size=1,
    in_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)

_CHARS = string.ascii_lowercase + string.digits + ".,!?'-"


def tiny_tokenizers():
    """Character-level CLIP (BPE without merges) and T5 (unigram) tokenizers on the `tokenizers`
    backend, with the special tokens and lengths FLUX's pipeline expects (77 and 512)."""
    from transformers import CLIPTokenizer, T5Tokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in _CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    clip = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in _CHARS] + [("▁" + c, -3.5) for c in _CHARS]
    t5 = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)
    return clip, t5


def tiny_components(seed: int = 0) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok, t5_tok = tiny_tokenizers()
    torch.manual_seed(seed)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tok), bos_token_id=0, eos_token_id=1, pad_token_id=1, **TINY_CLIP_TEXT
        )
    )
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(t5_tok), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **TINY_T5)
    )
    return dict(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=AutoencoderKL(**TINY_VAE),
        text_encoder=clip,
        tokenizer=clip_tok,
        text_encoder_2=t5,
        tokenizer_2=t5_tok,
        transformer=FluxTransformer2DModel(**TINY_TRANSFORMER),
    )


def _fingerprint() -> str:
    cfgs = (TINY_TRANSFORMER, TINY_VAE, TINY_CLIP_TEXT, TINY_T5, SCHEDULER, _CHARS)
    return hashlib.sha256(json.dumps(cfgs, sort_keys=True, default=list).encode()).hexdigest()[:8]


def save_tiny_flux(root: str, seed: int = 0) -> str:
    """Write (once) the tiny preset as a diffusers FLUX directory; returns its path."""
    from diffusers import FluxPipeline

    quiet_hf()

    def build(path: str) -> None:
        FluxPipeline(**tiny_components(seed)).save_pretrained(path)

    return build_atomically(
        build, os.path.join(root, f"flux-tiny-{_fingerprint()}-s{seed}"), "model_index.json"
    )
