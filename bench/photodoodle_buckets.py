"""What aspect-ratio buckets cost a PhotoDoodle step, against the reference's one 768x512 size.

    .venv/bin/python bench/photodoodle_buckets.py                 # FLOPs, pairs per epoch, order + decode time
    .venv/bin/python bench/photodoodle_buckets.py --no-flops      # skip the full-size FLOP counts

1. Step cost per bucket: image tokens and full-size FLUX.1-dev training FLOPs per sample (forward +
   backward with a rank-128 LoRA, counted on the meta device: exact, no GPU) of the bucket each common
   photo shape lands in, as a ratio to 768x512 (bench/photodoodle_step.py's `flops_only`).
2. Pairs an epoch trains on (cached runs, training/photodoodle/batches.py `epoch_order`): with
   micro-batches of one bucket a bucket's last partial micro-batch waits for the next epoch, for
   1x/3x/10x a 30-pair style (the paper's 30-50 pairs per style), as a ratio to stretching (one bucket).
3. Batching overhead: the time to plan an epoch's one-bucket micro-batches, and to decode a pair to its
   bucket (`decode_pairs`), against the stretch baseline measured in the same rounds (one core).
"""

from __future__ import annotations

import argparse
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import machine_line, pin_one_core, run_rounds, table

# Photo shapes (w, h) a user brings: phone portrait/landscape, 4:3 cameras, square, 16:9 video stills.
SHAPES = {"2:3 (reference)": (512, 768), "3:2": (768, 512), "1:1": (1000, 1000), "4:3": (4000, 3000),
          "3:4": (3000, 4000), "16:9": (1920, 1080), "9:16": (1080, 1920)}  # fmt: skip


def step_cost(flops: bool) -> list[list[str]]:
    from doodleflow.training.photodoodle.buckets import Buckets

    b = Buckets.for_run(768, 512, "bucket")
    ref = None
    rows = []
    for name, (w, h) in SHAPES.items():
        bh, bw = b.assign(w, h)
        tokens = 2 * (bh // 16) * (bw // 16)
        tf = None
        if flops:
            from bench.photodoodle_step import flops_only

            tf = flops_only(bh, bw, rank=128)["train_tflops"]
        ref = ref or (tokens, tf)
        rows.append([name, f"{w}x{h}", f"{bw}x{bh}", str(tokens), f"{tokens / ref[0]:.3f}",
                     f"{tf:.1f}" if tf else "-", f"{tf / ref[1]:.3f}" if tf else "-"])  # fmt: skip
    return rows


class _Cache:
    def __init__(self, buckets):
        self.buckets = buckets

    def __len__(self):
        return len(self.buckets)

    def bucket(self, i):
        return self.buckets[i]


def _mix(n: int) -> list[tuple[int, int]]:
    """n pairs over the common shapes' buckets, in the proportions of `SHAPES` (cycled)."""
    from doodleflow.training.photodoodle.buckets import Buckets

    b = Buckets.for_run(768, 512, "bucket")
    shapes = list(SHAPES.values())
    return [b.assign(*shapes[i % len(shapes)]) for i in range(n)]


def pairs_per_epoch() -> list[list[str]]:
    from doodleflow.training.photodoodle.batches import epoch_order

    rows = []
    for scale in (1, 3, 10):
        n = 30 * scale
        for mb in (1, 2, 4):
            bucketed = sum(len(m) for m in epoch_order(_Cache(_mix(n)), 0, 0, mb))
            stretched = sum(len(m) for m in epoch_order(_Cache([(768, 512)] * n), 0, 0, mb))
            rows.append(
                [
                    f"{scale}x ({n} pairs)",
                    str(mb),
                    str(bucketed),
                    str(stretched),
                    f"{bucketed / stretched:.3f}",
                ]
            )
    return rows


def overhead(rounds: int) -> list[list[str]]:
    import numpy as np
    from doodleflow.training.photodoodle.batches import epoch_order
    from doodleflow.training.photodoodle.buckets import Buckets
    from doodleflow.training.photodoodle.data import decode_pairs
    from PIL import Image

    rows = []
    for scale in (1, 3, 10):
        n = 30 * scale
        mixed, one = _Cache(_mix(n)), _Cache([(768, 512)] * n)
        r = run_rounds({"bucket": lambda c=mixed: bool(epoch_order(c, 0, 1, 1)),
                        "stretch": lambda c=one: bool(epoch_order(c, 0, 1, 1))}, rounds)  # fmt: skip
        rows.append([f"plan an epoch, {n} pairs", f"{r.median('bucket'):.0f} epochs/s",
                     f"{r.median('stretch'):.0f} epochs/s", f"{r.ratio('bucket', 'stretch'):.3f}"])  # fmt: skip
    rng = np.random.default_rng(0)
    jpegs = []
    for w, h in list(SHAPES.values())[:5]:
        buf = io.BytesIO()
        arr = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)  # a quarter size: ~0.1-0.7 MP
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    batch = {"pair_id": [str(i) for i in range(len(jpegs))], "artist": ["a"] * len(jpegs),
             "captions": [["x"]] * len(jpegs), "source_jpeg": jpegs, "target_jpeg": jpegs}  # fmt: skip
    bk, st = Buckets.for_run(768, 512, "bucket"), Buckets.for_run(768, 512, "stretch")
    r = run_rounds({"bucket": lambda: len(decode_pairs(batch, bk)["pair_id"]),
                    "stretch": lambda: len(decode_pairs(batch, st)["pair_id"])}, rounds)  # fmt: skip
    rows.append(["decode a pair to its size", f"{r.median('bucket'):.1f} pairs/s", f"{r.median('stretch'):.1f} pairs/s",
                 f"{r.ratio('bucket', 'stretch'):.3f}"])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-flops", action="store_true", help="skip the full-size FLOP counts (meta device)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    import torch

    pin_one_core()
    print(machine_line({"torch": torch.__version__}))
    print("\n1. step cost of the bucket each photo shape trains at (flux-dev, 393,216-px budget)\n")
    print(table(["shape", "photo w x h", "bucket w x h", "image tokens", "x 768x512", "train TFLOP/sample",
                 "x 768x512"], step_cost(not a.no_flops)))  # fmt: skip
    print("\n2. pairs an epoch trains on (cached; one bucket per micro-batch), mixed shapes\n")
    print(table(["pairs", "micro-batch", "bucket", "stretch", "ratio"], pairs_per_epoch()))
    print(f"\n3. batching overhead, one core, median of {a.rounds} interleaved rounds\n")
    print(table(["work", "bucket", "stretch", "ratio"], overhead(a.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
