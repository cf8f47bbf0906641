"""Convert pytorch-fid's Inception weights (`pt_inception-2015-12-05-6726825d.pth`) to the directory
format of inception.InceptionV3FID (config.json + model.safetensors).

    python -m training.eval.convert_inception pt_inception-2015-12-05-6726825d.pth models/fid-inception

The .pth is a plain state dict of torchvision's Inception3 with pytorch-fid's FID blocks, so the keys
map one to one; only the classifier `fc.*` (and `AuxLogits.*`, if present) is dropped, and BatchNorm
`num_batches_tracked` counters, absent from old checkpoints, are filled with 0 (unused in eval).
Keys and shapes are checked against the full-size model built on the meta device before anything is
written. Not tested against the real file here (no download possible); the tests convert a
synthetic checkpoint of the tiny preset through the same function.
"""

from __future__ import annotations

import argparse
import os

import torch
from doodleflow.infra.errors import InputError
from doodleflow.training.eval.inception import InceptionConfig, InceptionV3FID

DROPPED_PREFIXES = ("fc.", "AuxLogits.")


def _expected(config: InceptionConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = InceptionV3FID(config)
    return {k: v.shape for k, v in model.state_dict().items()}


def _check(state: dict[str, torch.Tensor], expected: dict[str, torch.Size]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k])
    if missing or unexpected or wrong:
        raise InputError(
            f"not a pytorch-fid Inception state dict: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), wrong shapes {wrong[:5]} ({len(wrong)})"
        )


def convert_state_dict(
    state: dict[str, torch.Tensor], config: InceptionConfig | None = None
) -> dict[str, torch.Tensor]:
    """pytorch-fid state dict -> InceptionV3FID state dict (validated; see the module docstring)."""
    config = config or InceptionConfig()
    expected = _expected(config)
    out = {k: v for k, v in state.items() if not k.startswith(DROPPED_PREFIXES)}
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = torch.tensor(0, dtype=torch.long)
    _check(out, expected)
    return out


def convert(pth_path: str, out_dir: str, config: InceptionConfig | None = None) -> str:
    """Read `pth_path` (torch.load, weights_only=True), write an InceptionV3FID dir; returns `out_dir`."""
    config = config or InceptionConfig()
    state = torch.load(pth_path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise InputError(f"{pth_path} does not hold a state dict")
    model = InceptionV3FID(config)
    model.load_state_dict(convert_state_dict(state, config), strict=True)
    return model.save_pretrained(out_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pth", help="pytorch-fid's pt_inception-2015-12-05-*.pth")
    parser.add_argument("out_dir", help="directory to write config.json + model.safetensors into")
    args = parser.parse_args(argv)
    print(convert(args.pth, os.path.abspath(args.out_dir)))


if __name__ == "__main__":
    main()
