"""Which CLIP / Inception weights an evaluation uses: a user's local directory, else tiny random
models of the same classes (built once under the models cache; their numbers mean nothing)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from training.eval.clip import Clip, load_clip, tiny_clip
from training.eval.inception import InceptionV3FID, tiny_inception

TINY_NOTE = ("tiny random {what} (no weights given): the code path is the real one, the numbers mean nothing")


@dataclass
class EvalModels:
    clip: Clip
    inception: InceptionV3FID
    notes: dict[str, str]


def load_eval_models(home: str, clip_dir: str | None = None, inception_dir: str | None = None,
                     device: str = "cpu") -> EvalModels:
    notes = {}
    if not clip_dir:
        clip_dir = os.path.join(home, "models", "eval-tiny-clip")
        if not os.path.exists(os.path.join(clip_dir, "config.json")):
            tiny_clip(clip_dir)
        notes["clip"] = TINY_NOTE.format(what="CLIP")
    else:
        notes["clip"] = clip_dir
    if not inception_dir:
        inception_dir = os.path.join(home, "models", "eval-tiny-inception")
        if not os.path.exists(os.path.join(inception_dir, "config.json")):
            tiny_inception(inception_dir)
        notes["inception"] = TINY_NOTE.format(what="Inception-v3")
    else:
        notes["inception"] = inception_dir
    return EvalModels(load_clip(clip_dir, device), InceptionV3FID.from_pretrained(inception_dir, device), notes)
