"""What samples while training (training/runtime/previews.py) add to a tiny run's wall time.

Each round trains the same run twice in this process, with sampling off (`--sample-every 0`) and at the
family's default (`sample.every`, inputs, sampler steps), in alternating order. Two figures, medians
over rounds: the wall time on / off, and, within the "on" run itself, the seconds spent sampling over
the seconds spent on everything else (the steadier figure on a shared machine, where two consecutive
identical runs differ by more than the samples cost). Timed: from the sampler's setup (held-out rows read, prompts encoded)
to the end of `train` (checkpoints, metrics and result included), the same work as a Ray worker's
loop, without Ray's start-up (which only makes a real run's ratio smaller).

- PhotoDoodle EditLoRA, tiny preset, every training default (500 steps, global batch 1, 96x64);
  samples at steps 250 and 500 (2 held-out pairs, 20 sampler steps).
- Paint-by-Example, tiny preset, the default 100 steps and global batch 32, at `--pbe-resolution`
  (default 128: 512 px takes most of an hour per run on a shared CPU). At its default (every 500, no
  step-0 sample, as the reference's logger) a 100-step run samples nothing, so the case measured is
  `--sample-every 50` (points 50 and 100; 4 held-out samples, PLMS 50 steps, guidance 5): the cost of
  two sampling points against 100 training steps.

    .venv/bin/python bench/sampling_cost.py [--rounds 2] [--families editlora,pbe] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import machine_line, table


def _points(run) -> list[dict]:
    from doodleflow.training.runtime.previews import FILE

    return (run.read_json(FILE) or {}).get("points", [])


def _editlora(root: str):
    """A function (every, name) -> seconds of one default tiny EditLoRA run."""
    from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
    from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
    from doodleflow.training.photodoodle.job import plan_job
    from doodleflow.training.photodoodle.model import load_model
    from doodleflow.training.photodoodle.previews import doodle_previews
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
    from doodleflow.training.runtime.loop import WorkerContext, train

    from tests.photodoodle.helpers import make_pair_dataset

    store = os.path.join(root, "store")
    make_pair_dataset(root, store, "magic", 24)

    def run(every: int | None, name: str) -> float:
        cfg = TrainConfig.for_stage(
            "editlora", "tiny", store=store, dataset="magic", artist="magic", run_name=name
        )
        src = ModelSource(preset="tiny", tiny_root=os.path.join(root, "models"), base_transformer=PLAIN_BASE)
        cfg = cfg.replace(model={"source": src}, sample={} if every is None else {"every": every})
        plan = plan_job(cfg, log=lambda m: None)
        info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
        model = load_model(plan.cfg.model.source)
        trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
        t0 = time.perf_counter()
        samples = doodle_previews(trainer, plan.run, info)
        batches = cached_epochs(cached_pairs(plan.cfg, info, model, "cpu", 0), trainer, 0, 1)
        train(trainer, plan.run, batches, WorkerContext(log=lambda m: None, previews=samples))
        return time.perf_counter() - t0, _points(plan.run)

    return run


def _pbe(root: str, batch: int, resolution: int):
    from doodleflow.data.config import CurationConfig
    from doodleflow.data.refresh import refresh_in_process
    from doodleflow.data.store import DatasetStore
    from doodleflow.data.synthetic import make_source
    from doodleflow.training.pbe.config import TrainConfig
    from doodleflow.training.pbe.data import decode_rows, pixel_batch
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe
    from doodleflow.training.pbe.previews import pbe_previews
    from doodleflow.training.pbe.trainer import PbETrainer
    from doodleflow.training.runs.rundir import RunDir
    from doodleflow.training.runtime.loop import WorkerContext, train

    store, src = os.path.join(root, "store"), os.path.join(root, "src")
    make_source(src, 48, seed=0, size=(640, 480), boxes_per_image=(1, 1))
    v = refresh_in_process(src, "bench", store, CurationConfig(seed=0), run_id="bench")["version"]
    tiny = save_tiny_pbe(os.path.join(root, "models"), seed=0)
    t = DatasetStore(store, "bench").read_table(v, columns=["target_jpeg", "mask_png", "reference_jpeg"])
    arrays = decode_rows(t.slice(0, batch).to_pydict(), resolution=resolution, ref_size=224)

    def run(every: int | None, name: str) -> float:
        cfg = TrainConfig().replace(
            data={"resolution": resolution, "batch_size": batch},
            run={"store": store, "dataset": "bench", "version": v, "run_name": name},
            sample={} if every is None else {"every": every},
        )
        trainer = PbETrainer(load_pbe_dir(tiny), cfg)
        run_dir = RunDir(store, "pbe", name)
        px = pixel_batch(arrays)
        t0 = time.perf_counter()
        samples = pbe_previews(trainer, run_dir)
        train(trainer, run_dir, lambda e: [px], WorkerContext(log=lambda m: None, previews=samples))
        return time.perf_counter() - t0, _points(run_dir)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--families", default="editlora,pbe")
    ap.add_argument("--pbe-batch", type=int, default=32)
    ap.add_argument("--pbe-resolution", type=int, default=128)
    ap.add_argument("--json")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(machine_line({"torch": torch.__version__}), f"load={os.getloadavg()[0]:.1f}")
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as root:
        os.environ["DOODLEFLOW_HOME"] = os.path.join(root, "home")
        for fam in a.families.split(","):
            make = _editlora if fam == "editlora" else lambda r: _pbe(r, a.pbe_batch, a.pbe_resolution)
            run = make(os.path.join(root, fam))
            on = None if fam == "editlora" else 50  # None: the family's default
            times, points, added = {"off": [], "on": []}, [], []
            for r in range(a.rounds):
                for case in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    seconds, pts = run(0 if case == "off" else on, f"{case}-{r}")
                    times[case].append(seconds)
                    points = pts or points
                sampled = sum(p["seconds"] for p in points)
                added.append(sampled / (times["on"][-1] - sampled))  # within the "on" run
                print(f"  {fam} round {r + 1}: off {times['off'][-1]:.1f}s, on {times['on'][-1]:.1f}s "
                      f"(sampled at steps {[p['step'] for p in points]}: {sampled:.2f}s)")  # fmt: skip
            ratio = statistics.median(on / off for on, off in zip(times["on"], times["off"], strict=True))
            out[fam] = {**times, "ratio": ratio, "added": added, "points": points}
            rows.append([fam if on is None else f"{fam} --sample-every {on}", f"{statistics.median(times['off']):.1f}", f"{statistics.median(times['on']):.1f}",
                         f"{ratio:.3f}", f"{100 * statistics.median(added):.1f}%",
                         ", ".join(str(p["step"]) for p in points)])  # fmt: skip
    header = ["run", "sampling off (s)", "default sampling (s)", "on / off (wall)", "sampling / training, same run",
              "sampled at steps"]  # fmt: skip
    print(table(header, rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
