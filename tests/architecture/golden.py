"""Digests of what a training run leaves behind, normalised only where a value truly varies between two
runs of the same commit, and their comparison: bit for bit on the CPU the fixture was recorded on, a
tolerance on per-tensor statistics elsewhere (tests/architecture/test_behaviour_golden.py)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re

# What varies between two runs of one commit, and why it is left out. Everything else is compared.
NORMALISED = {
    "paths": "the run's temporary DOODLEFLOW_HOME is replaced by $HOME in every string and file name",
    "timing keys": "wall-clock values: time, created_at, seconds, share, data_time, step_time, "
    "samples_per_s, median_samples_per_s, eta_s and progress.json's line (it prints the rates)",
    "uuids": "Prefect flow run ids and names, MLflow run ids (32 hex digits) and uuid4s become <uuid>",
    "code version": "git_commit and git_dirty name the commit, which the refactor changes by design",
    "json digests": "a registered .json file's sha256 and bytes are of its normalised content "
    "(state.json and lora.json hold the temporary paths and created_at)",
    "restarts": "a Ray Train restart after a worker failure (a loaded machine misses a health check) "
    "resumes exactly from the last checkpoint: a metrics record's resumed_from is dropped, the MLflow "
    "loss history keeps each step's last value, and the loss curve images (a line marks the restart) "
    "are not compared for that run",
    "digests": "a tensor's sha256 is stored as its first 24 hex digits; an earlier checkpoint's tensors as "
    "one sha256 of their map (the last checkpoint lists every tensor)",
    "safetensors bytes": "safetensors writes its __metadata__ map in a per-process random order (a Rust "
    "HashMap: checkpoints carry format and step), so a file's sha256 differs between runs with the same "
    "tensors: state.json's file entries keep their byte count only, a record's .safetensors files get a "
    "normalised_sha256 of their tensors and metadata; every tensor is compared by itself",
    "safetensors metadata": "peft writes the LoRA config's target_modules, a Python set, in hash order "
    "(PYTHONHASHSEED): metadata values are parsed as JSON and their lists of names sorted",
    "mlflow artifact files": "their names hold timestamps and uuids: the images are compared in the run "
    "folder they are copied from; the registry record, params, doodleflow tags and loss history are kept",
}
VOLATILE_KEYS = frozenset(
    {
        "time",
        "created_at",
        "seconds",
        "share",
        "data_time",
        "step_time",
        "samples_per_s",
        "median_samples_per_s",
        "eta_s",
        "line",
        "flow_run_id",
        "flow_run_name",
        "prefect_flow_run_id",
        "git_commit",
        "git_dirty",
    }
)
UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
)
IMAGES = (".png", ".jpg", ".jpeg", ".webp")
LONG_LIST = 24  # longer lists (the optimizer's parameter names) are stored as length + digest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Normaliser:
    """Replaces the run's home folder and uuids in strings, drops the volatile keys."""

    def __init__(self, home: str):
        self.home = os.path.realpath(home)
        self.homes = sorted({home, self.home}, key=len, reverse=True)

    def text(self, s: str) -> str:
        for h in self.homes:
            s = s.replace(h, "$HOME")
        return UUID.sub("<uuid>", s)

    def value(self, v):
        if isinstance(v, dict):
            return {
                self.text(k): self.value(_unhashed(k, x))
                for k, x in sorted(v.items())
                if k not in VOLATILE_KEYS
            }
        if isinstance(v, list | tuple):
            out = [self.value(x) for x in v]
            if len(out) > LONG_LIST:
                return {"len": len(out), "sha256": sha256(canonical(out))}
            return out
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        return v


def dumps(v, indent: str = "") -> str:
    """JSON with one line per small value (a tensor's entry, an image's): a fixture diff names what
    changed, one line each."""
    flat = json.dumps(v, sort_keys=True)
    if len(flat) <= 160 or not isinstance(v, dict | list) or not v:
        return flat
    inner = indent + " "
    if isinstance(v, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v[k], inner)}" for k in sorted(v)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + dumps(x, inner) for x in v) + "\n" + indent + "]"


def _unhashed(key: str, v):
    """A `{"x.safetensors": {"sha256", "bytes"}}` entry (state.json's files) without its sha256: the
    file's bytes vary (see NORMALISED), its tensors are compared one by one."""
    if key.endswith(".safetensors") and isinstance(v, dict) and "sha256" in v:
        return {k: x for k, x in v.items() if k != "sha256"}
    return v


def canonical(v) -> bytes:
    return json.dumps(v, sort_keys=True, separators=(",", ":")).encode()


def tensor_digests(path: str) -> dict:
    """name -> dtype, shape, sha256 of the raw bytes, and small statistics for the tolerance check."""
    import torch
    from safetensors.torch import load_file

    out = {}
    for name, t in sorted(load_file(path).items()):
        f = t.detach().to(torch.float64)
        stats = (
            [float(f.mean()), float(f.std()) if f.numel() > 1 else 0.0, float(f.abs().max())]
            if f.numel()
            else []
        )
        stats = [float(f"{x:.6g}") for x in stats]  # enough for the tolerance check, short in the fixture
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        out[name] = {
            "dtype": str(t.dtype),
            "shape": list(t.shape),
            "sha256": sha256(raw)[:24],
            "stats": stats,
        }
    return out


def image_digest(path: str) -> dict:
    """The decoded pixels (not the PNG bytes, which depend on the encoder): size, mode, sha256, means."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        a = np.asarray(im)
        return {
            "size": list(im.size),
            "mode": im.mode,
            "pixels_sha256": sha256(a.tobytes()),
            "mean": [round(float(m), 4) for m in a.reshape(-1, a.shape[-1] if a.ndim == 3 else 1).mean(0)],
        }


def safetensors_digest(path: str) -> str:
    """sha256 of a safetensors file's tensors (dtype, shape, bytes) and metadata, in a fixed order."""

    return sha256(canonical({"metadata": file_metadata(path), "tensors": tensor_digests(path)}))


def file_metadata(path: str) -> dict:
    """A safetensors file's metadata, JSON values parsed, lists of names sorted (see NORMALISED)."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    out = {}
    for k, v in meta.items():
        try:
            out[k] = _sorted_names(json.loads(v))
        except ValueError:
            out[k] = v
    return out


def _sorted_names(v):
    if isinstance(v, dict):
        return {k: _sorted_names(x) for k, x in v.items()}
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return sorted(v)
    return [_sorted_names(x) for x in v] if isinstance(v, list) else v


def file_digest(path: str, norm: Normaliser):
    if path.endswith(".safetensors"):
        return {"metadata": norm.value(file_metadata(path)), "tensors": tensor_digests(path)}
    if path.endswith(IMAGES):
        return {"image": image_digest(path)}
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".json"):
        return {"json": norm.value(json.loads(data))}
    if path.endswith(".jsonl"):
        records = [json.loads(line) for line in data.decode().splitlines() if line]
        return {"jsonl": [norm.value({k: v for k, v in r.items() if k != "resumed_from"}) for r in records]}
    return {"sha256": sha256(norm.text(data.decode("latin-1")).encode("latin-1"))}


def tree_digests(root: str, norm: Normaliser) -> dict:
    """Every file under `root` (a store's runs/, loras/, ...), keyed by its normalised relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            out[norm.text(os.path.relpath(full, root))] = file_digest(full, norm)
    return summarise_earlier_checkpoints(dict(sorted(out.items())))


CHECKPOINT = re.compile(r"^(.*checkpoints/step-)(\d+)(/.*\.safetensors)$")


def summarise_earlier_checkpoints(files: dict) -> dict:
    """The last checkpoint's tensors one by one; an earlier checkpoint's as one digest of that map (the
    same writer wrote both; a fixture of every tensor of every step would be megabytes)."""
    last: dict[str, int] = {}
    for path in files:
        if m := CHECKPOINT.match(path):
            last[m[1]] = max(last.get(m[1], 0), int(m[2]))
    out = {}
    for path, d in files.items():
        m = CHECKPOINT.match(path)
        if m and int(m[2]) < last[m[1]]:
            d = {"tensors": len(d["tensors"]), "sha256": sha256(canonical(d["tensors"]))}
        out[path] = d
    return out


def lineage_files(files: list[dict], uri: str, norm: Normaliser) -> list[dict]:
    """A record's file list, with each .json file that holds a volatile value digested normalised."""
    out = []
    for f in files:
        f = dict(f)
        full = os.path.join(uri, f["path"])
        if f["path"].endswith(".safetensors") and os.path.exists(full):
            f = {"path": f["path"], "bytes": f.get("bytes"), "normalised_sha256": safetensors_digest(full)}
        elif f["path"].endswith(".json") and os.path.exists(full):
            with open(full, "rb") as fh:
                content = canonical(norm.value(json.loads(fh.read())))
            f = {"path": f["path"], "normalised_sha256": sha256(content)}
        out.append(f)
    return out


# -- comparison -------------------------------------------------------------------------------------

DIGEST_KEYS = frozenset({"sha256", "pixels_sha256", "normalised_sha256", "replica_digests", "manifest_hash"})


def differences(expected, actual, exact: bool, where: str = "") -> list[str]:
    """Where `actual` differs from `expected`. exact=False (another CPU or torch): digests are skipped,
    floats (losses, statistics, metrics) agree to a relative 2e-3 / absolute 1e-4, image means to 2/255."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(expected) | set(actual)):
            if not exact and k in DIGEST_KEYS:
                continue
            if k not in actual or k not in expected:
                out.append(f"{where}/{k}: {'missing' if k not in actual else 'unexpected'}")
            else:
                out += differences(expected[k], actual[k], exact, f"{where}/{k}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for d in differences(e, a, exact, f"{where}[{i}]")
        ]
    if not exact and _number(expected) and _number(actual) and float in (type(expected), type(actual)):
        tol = 2.0 if "/mean" in where and "/image" in where else 1e-4 + 2e-3 * abs(expected)
        return (
            [] if abs(expected - actual) <= tol else [f"{where}: {expected} != {actual} (beyond {tol:.3g})"]
        )
    return (
        []
        if expected == actual and type(expected) is type(actual)
        else [f"{where}: {_short(expected)} != {_short(actual)}"]
    )


VALUE_KEYS = frozenset({"stats", "mean", "pixels_sha256", "normalised_sha256", "replica_digests"})
# What training computes (losses, gradient norms, evaluation metrics), wherever it is written: a
# metrics record, a result, an eval.json, an MLflow tag (`doodleflow.final_loss`) or param.
OUTCOME_KEYS = frozenset(
    {"loss", "final_loss", "grad_norm", "region_clip_score", "fid", "quality_score", "clip_text_score",
     "clip_img_source", "clip_img_target"}
)  # fmt: skip


def structure(v, where: str = ""):
    """`v` without what the trained weights decide (digests, statistics, losses, metrics): file layout,
    run id, config, tensor names, dtypes and shapes, record fields and image sizes stay. The base
    weights' digests (bases.json, the record's base files) are inputs and stay too."""
    if isinstance(v, dict):
        keep = "bases.json" in where or "/base[" in where
        return {k: "<value>" if k.rsplit(".", 1)[-1] in OUTCOME_KEYS else structure(x, f"{where}/{k}")
                for k, x in v.items() if k not in VALUE_KEYS and (k != "sha256" or keep)}  # fmt: skip
    if isinstance(v, list):
        return [structure(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return v


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) < 160 else s[:157] + "..."
