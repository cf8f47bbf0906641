"""Samples while a run trains (issue 22): every `sample.every` steps rank 0 edits a fixed set of
held-out inputs with the current weights, in the training process and with its own modules (no
second model load), and the run's grid gains a column. Paint-by-Example's trainer does the same with
its image logger callback (Fantasy-Studio/Paint-by-Example main.py:304-398, `ImageLogger.log_img`: eval
mode, no_grad, back to train mode).

Training is unchanged by it, bit for bit: the sampler draws from its own seeded generators, the
global RNG state (CPU and the device's) is restored afterwards, every module gets back its own
train/eval mode, and nothing runs through the DDP wrapper (the unwrapped modules, under no_grad).

Where the grid goes (one row per input, its input cells first, then one column per sampling point):
- the run folder: `samples/grid.png`, each point's tiles under `samples/step-NNNNNN/`, and
  `samples/samples.json` (the points, their cost, the grid's URI; a resumed run continues it);
- the run's MLflow run: the grid as an image at that step (`log_image`, key `samples`);
- the driver: `follow` reads `samples.json` as it changes and hands it to the sinks a Prefect task
  registered (`reporting`: an artifact on the flow run's page), and logs one line per point.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from PIL import Image

FILE = "samples/samples.json"
GRID = "samples/grid.png"
MAX_COLUMNS = 16  # sampling points shown in the grid: the first and the newest (all stay in the folder)


@dataclass
class PreviewInputs:
    """The fixed inputs: per row its input cells (images, or text such as a prompt) under `labels`."""

    labels: list[str]
    rows: list[list]
    heldout: bool = True  # False: the version holds nothing out, so these are training inputs


def readable_image(buf: bytes | None, mode: str = "RGB") -> Image.Image | None:
    """A stored image decoded, or None when it cannot be (samples never fail a run)."""
    try:
        img = Image.open(io.BytesIO(buf or b""))
        img.load()
        return img.convert(mode)
    except (OSError, ValueError):  # PIL's UnidentifiedImageError and truncated files are OSErrors
        return None


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@contextlib.contextmanager
def sampling_mode(modules: list[torch.nn.Module], device: torch.device) -> Iterator[None]:
    """Eval mode and no_grad for the block; afterwards every submodule's own mode and the global RNG
    state (CPU, and the device's) are as they were, so the next training step is the same."""
    modes = [(m, m.training) for top in modules for m in top.modules()]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for top in modules:
            top.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training


class Previews:
    """Rank 0's sampler: `after_step` samples every `settings.every` steps, and at step 0 with
    `settings.first`. Not at a last step off the interval: the evaluation after training repaints
    the held-out inputs with the final weights already."""

    def __init__(
        self,
        run,
        settings,
        inputs: PreviewInputs,
        render: Callable[[], list[Image.Image]],
        modules: list[torch.nn.Module],
        device: torch.device,
        tracker=None,
        resume_step: int = 0,
    ) -> None:
        self.run, self.s, self.inputs, self.render = run, settings, inputs, render
        self.modules, self.device, self.tracker = modules, torch.device(device), tracker
        self.started = time.perf_counter()
        self.spent = 0.0  # seconds sampled in this launch
        old = (run.read_json(FILE) or {}).get("points", []) if resume_step else []
        self.points = [p for p in old if p["step"] <= resume_step]  # steps after it are trained again
        self.columns = {p["step"]: self._read_tiles(p["step"]) for p in self.points}

    def due(self, step: int, total: int) -> bool:
        every = self.s.every
        if every <= 0 or any(p["step"] == step for p in self.points) or (step == 0 and not self.s.first):
            return False
        return step % every == 0  # the end of a run is shown by its evaluation grid

    def after_step(self, step: int, total: int) -> dict | None:
        return self.sample(step) if self.due(step, total) else None

    def sample(self, step: int) -> dict:
        t0 = time.perf_counter()
        with sampling_mode(self.modules, self.device):
            images = self.render()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        self.spent += seconds
        tiles = [_fit(img, self.s.tile) for img in images]
        for i, tile in enumerate(tiles):
            self.run.write_bytes(f"{_step_dir(step)}/row-{i:02d}.png", png_bytes(tile))
        self.columns[step] = tiles
        wall = time.perf_counter() - self.started
        self.points.append({"step": step, "seconds": round(seconds, 4)})
        grid = self.grid()
        self.run.write_bytes(GRID, png_bytes(grid))
        record = {
            "step": step,
            "seconds": seconds,
            "share": self.spent / max(wall, 1e-9),  # of this launch's wall time so far
            "rows": len(tiles),
            "points": self.points,
            "grid": self.run.uri(self.run.path(GRID)),
            "heldout": self.inputs.heldout,
            "time": time.time(),
        }
        self.run.write_json(FILE, record)
        if self.tracker is not None:
            self.tracker.log_image(grid, step)
        return record

    def shown(self) -> list[int]:
        steps = sorted(self.columns)
        return steps if len(steps) <= MAX_COLUMNS else [steps[0], *steps[-(MAX_COLUMNS - 1) :]]

    def grid(self) -> Image.Image:
        from doodleflow.training.eval.grid import grid_image

        steps = self.shown()
        rows = [cells + [self.columns[s][i] for s in steps] for i, cells in enumerate(self.inputs.rows)]
        labels = self.inputs.labels + [f"step {s}" for s in steps]
        return grid_image(rows, labels, layout(self.s.tile))

    def _read_tiles(self, step: int) -> list[Image.Image]:
        out = []
        for i in range(len(self.inputs.rows)):
            data = self.run.read_bytes(f"{_step_dir(step)}/row-{i:02d}.png")
            out.append(Image.open(io.BytesIO(data)).convert("RGB") if data else Image.new("RGB", (8, 8)))
        return out


def layout(tile: int):
    from doodleflow.training.eval.grid import GridLayout

    return GridLayout(tile=tile, pad=4, header=20, font_size=12)


def _step_dir(step: int) -> str:
    return f"samples/step-{step:06d}"


def _fit(img: Image.Image, tile: int) -> Image.Image:
    from doodleflow.training.eval.grid import image_tile

    return image_tile(img, tile)


# -- the driver: follow samples.json, show it where users look ---------------------------------------
_sinks: list[Callable[[dict], None]] = []


@contextlib.contextmanager
def reporting(emit: Callable[[dict], None]) -> Iterator[None]:
    """Send each new sampling point of the jobs launched in this block to `emit` (its record, with the
    grid's PNG bytes under "png"): e.g. a Prefect artifact (tasks/progress.py)."""
    _sinks.append(emit)
    try:
        yield
    finally:
        _sinks.remove(emit)


def describe(p: dict) -> str:
    where = "" if p.get("heldout", True) else " (training inputs: the version holds none out)"
    return (
        f"samples at step {p['step']}: {p['rows']} input(s) in {p['seconds']:.1f}s "
        f"({100 * p['share']:.1f}% of the run's time so far){where}: {p['grid']}"
    )


def follow(run, log: Callable[[str], None]):
    """Driver: a context in which each new samples.json of `run` is logged (one line) and sent to
    the registered sinks with the grid's bytes."""
    from doodleflow.training.runtime import progress

    def emit(p: dict) -> None:
        log(describe(p))
        if _sinks:
            png = run.read_bytes(GRID)
            for sink in list(_sinks):
                with contextlib.suppress(Exception):  # showing samples never fails a run
                    sink({**p, "png": png})

    return progress.follow(run, emit, file=FILE)
