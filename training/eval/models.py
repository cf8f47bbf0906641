"""Which CLIP / Inception weights an evaluation uses: a user's local directory, else tiny random
models of the same classes (built once under the models cache; their numbers mean nothing)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from doodleflow.training.eval.clip import Clip, load_clip, tiny_clip
from doodleflow.training.eval.inception import InceptionV3FID, tiny_inception

TINY_NOTE = "tiny random {what} (no weights given): the code path is the real one, the numbers mean nothing"


@dataclass
class EvalModels:
    clip: Clip
    inception: InceptionV3FID
    notes: dict[str, str]


def _dir_or_tiny(given: str | None, home: str, name: str, build, what: str) -> tuple[str, str]:
    """(directory to load, note for the report): the user's, else a tiny one built once."""
    if given:
        return given, given
    path = os.path.join(home, "models", name)
    if not os.path.exists(os.path.join(path, "config.json")):
        build(path)
    return path, TINY_NOTE.format(what=what)


def load_eval_models(
    home: str, clip_dir: str | None = None, inception_dir: str | None = None, device: str = "cpu"
) -> EvalModels:
    clip_dir, clip_note = _dir_or_tiny(clip_dir, home, "eval-tiny-clip", tiny_clip, "CLIP")
    inc_dir, inc_note = _dir_or_tiny(
        inception_dir, home, "eval-tiny-inception", tiny_inception, "Inception-v3"
    )
    return EvalModels(
        load_clip(clip_dir, device),
        InceptionV3FID.from_pretrained(inc_dir, device),
        {"clip": clip_note, "inception": inc_note},
    )
