"""A training run's directory in the store (local path or s3://), shared by every trainer.

    runs/<family>/<run-id>/                   under the store's runs root (infra/settings.py: runs_root)
        run.json                              the run's config, dataset and model source (first write)
        checkpoints/step-000100/
            model.safetensors                 trainable weights, named as the diffusers components
            optimizer.safetensors             optimizer state, `<key>/<parameter name>`
            state.json                        step, counters, optimizer hyper-parameters, file hashes
        metrics.jsonl                         one JSON object per logged step
        loss.png                              loss curve
        result.json                           summary of the finished run

Every file is written atomically (temp + rename locally, a single PUT on S3), and `state.json` is
written last: a checkpoint exists iff its state.json does, so a kill mid-write never produces a
corrupt "latest" - the previous checkpoint stays the latest.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable

import torch
from doodleflow.data.fsutil import atomic_write, filesystem, join
from doodleflow.infra.errors import NotFoundError, TamperedArtifact
from doodleflow.infra.settings import runs_root
from doodleflow.training.core.checkpoint import sha256, tensors_from_bytes, tensors_to_bytes
from doodleflow.training.runs.seal import read_seal, refuse_sealed

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
STATE = "state.json"
CHECKPOINTS = "checkpoints"  # <run>/checkpoints/step-NNNNNN/


def run_of_checkpoint(checkpoint: str) -> str:
    """The run folder of a checkpoint directory `<run>/checkpoints/step-NNNNNN` (path or URI, the
    same form back), where the run's own files (run.json, bases.json) are."""
    return checkpoint.rstrip("/").rsplit("/", 2)[0]


class RunDir:
    def __init__(self, store_uri: str, family: str, run_id: str) -> None:
        self.store_uri = store_uri.rstrip("/")
        self.fs, runs = filesystem(runs_root(self.store_uri))
        self.root = join(runs, family, run_id)
        self.family, self.run_id = family, run_id
        self._s3 = self.store_uri.startswith("s3://")

    def uri(self, path: str | None = None) -> str:
        p = path or self.root
        return f"s3://{p}" if self._s3 else p

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    # -- small files ----------------------------------------------------------------------------
    def write_bytes(self, name: str, data: bytes) -> str:
        atomic_write(self.fs, self.path(name), data)
        return self.uri(self.path(name))

    def write_json(self, name: str, obj) -> str:
        return self.write_bytes(name, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_bytes(self, name: str) -> bytes | None:
        p = self.path(name)
        return self.fs.cat_file(p) if self.fs.exists(p) else None

    def read_json(self, name: str):
        data = self.read_bytes(name)
        return None if data is None else json.loads(data)

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint_path(self, step: int) -> str:
        return self.path(CHECKPOINTS, f"step-{step:06d}")

    def steps(self) -> list[int]:
        """Complete checkpoints (those with a state.json), oldest first."""
        root = self.path(CHECKPOINTS)
        if not self.fs.exists(root):
            return []
        out = []
        for p in self.fs.ls(root, detail=False):
            m = _STEP_DIR.match(posixpath.basename(p.rstrip("/")))
            if m and self.fs.exists(join(p, STATE)):
                out.append(int(m.group(1)))
        return sorted(out)

    def latest(self) -> int | None:
        s = self.steps()
        return s[-1] if s else None

    def write_checkpoint(
        self, step: int, model: dict[str, torch.Tensor], optimizer: dict[str, torch.Tensor], state: dict
    ) -> str:
        d = self.checkpoint_path(step)
        refuse_sealed(self.fs, d, "writing checkpoint", stop=self.path(CHECKPOINTS))
        files = {}
        for name, tensors in (("model.safetensors", model), ("optimizer.safetensors", optimizer)):
            data = tensors_to_bytes(tensors, {"format": "pt", "step": str(step)})
            atomic_write(self.fs, join(d, name), data)
            files[name] = {"sha256": sha256(data), "bytes": len(data)}
        state = {**state, "step": step, "files": files}
        atomic_write(
            self.fs, join(d, STATE), json.dumps(state, indent=2, sort_keys=True, default=str).encode()
        )
        return self.uri(d)

    def read_checkpoint(self, step: int, optimizer: bool = True) -> tuple[dict, dict | None, dict]:
        """(model tensors, optimizer tensors or None, state), verifying each file's hash."""
        return read_checkpoint_uri(self.uri(self.checkpoint_path(step)), optimizer)

    def prune(self, keep: int, keep_weights: Callable[[int], bool] = lambda step: False) -> list[int]:
        """Delete all but the newest `keep` checkpoints; returns the steps removed. A registered
        checkpoint (training/runs/seal.py) is never touched. A step for which `keep_weights` is true
        (a sampling point, which a person may register from its grid) keeps its weights and state.json
        and loses only its optimizer state (half or more of the bytes)."""
        old = self.steps()[:-keep] if keep > 0 else []
        old = [s for s in old if read_seal(self.fs, self.checkpoint_path(s)) is None]
        for step in [s for s in old if keep_weights(s)]:
            optimizer = join(self.checkpoint_path(step), "optimizer.safetensors")
            if self.fs.exists(optimizer):
                self.fs.rm(optimizer)
        old = [s for s in old if not keep_weights(s)]
        for step in old:
            # state.json first: the checkpoint stops existing before its tensors go.
            self.fs.rm(join(self.checkpoint_path(step), STATE))
            self.fs.rm(self.checkpoint_path(step), recursive=True)
        return old


def _read_tensors(fs, d: str, name: str, state: dict) -> dict[str, torch.Tensor]:
    data = fs.cat_file(join(d, name))
    want = state["files"][name]["sha256"]
    if sha256(data) != want:
        raise TamperedArtifact(f"{join(d, name)}: sha256 mismatch (file corrupt or replaced)")
    return tensors_from_bytes(data)


def read_checkpoint_state(uri: str) -> dict:
    """A checkpoint's state.json (step, config, file hashes) without its tensors."""
    fs, path = filesystem(uri)
    try:
        return json.loads(fs.cat_file(join(path, STATE)))
    except FileNotFoundError as e:
        raise NotFoundError(f"{uri}: not a run checkpoint (no {STATE})") from e


def read_checkpoint_uri(uri: str, optimizer: bool = False) -> tuple[dict, dict | None, dict]:
    """Read a checkpoint given its directory URI (.../runs/<family>/<run>/checkpoints/step-NNNNNN),
    verifying each file against the hash recorded in state.json."""
    fs, path = filesystem(uri)
    state = read_checkpoint_state(uri)
    return (
        _read_tensors(fs, path, "model.safetensors", state),
        (_read_tensors(fs, path, "optimizer.safetensors", state) if optimizer else None),
        state,
    )
