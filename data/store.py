"""The versioned dataset store: immutable shards, self-contained versions, atomic commits.

Layout under the store root (a local path or s3://bucket/prefix):

    datasets/<name>/shards/<unit-key>.parquet   one built work unit (content-addressed, immutable)
    datasets/<name>/shards/<unit-key>.json      its stats; written after the Parquet = "shard done"
    datasets/<name>/versions/v000003/           one version, readable as a plain Parquet directory:
        part-<unit-key>.parquet ...             hard links (local) / server-side copies (S3) of shards
        _inputs.parquet _quarantine.parquet _dropped.parquet
        _claim                                  the version number's owner (exclusive create)
        _manifest.json                          written last: the version exists iff this file does

Readers only ever list versions that have a manifest, so a crash at any point leaves the previous
version as the latest; files of a half-made version are invisible and the next run starts anew.
(Parquet readers skip files whose names start with '_'.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import socket
import time
from typing import TYPE_CHECKING

from doodleflow.data.fsutil import (
    atomic_write,
    create_exclusive,
    filesystem,
    join,
    link_or_copy,
    live_temporary,
    sweep_temporary,
)
from doodleflow.data.names import validate_name
from doodleflow.infra.errors import LostRace, NotFoundError

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = "_manifest.json"
_VERSION_DIR = re.compile(r"^v(\d{6})$")
CLAIM_GRACE = 30.0  # seconds a claim folder without its `_claim` yet counts as being made


class DatasetStore:
    def __init__(self, store_uri: str, name: str) -> None:
        self.store_uri = store_uri.rstrip("/")
        self.name = validate_name(name, "dataset name")
        self.fs, root = filesystem(self.store_uri)
        self.root = join(root, "datasets", name)
        self._s3 = self.store_uri.startswith("s3://")

    # -- addressing ---------------------------------------------------------------------------
    def uri(self, path: str) -> str:
        return f"s3://{path}" if self._s3 else path

    def shard_path(self, key: str) -> str:
        return join(self.root, "shards", f"{key}.parquet")

    def version_path(self, version: int) -> str:
        return join(self.root, "versions", f"v{version:06d}")

    # -- reading ------------------------------------------------------------------------------
    def _version_dirs(self) -> list[int]:
        vroot = join(self.root, "versions")
        if not self.fs.exists(vroot):
            return []
        out = []
        for p in self.fs.ls(vroot, detail=False):
            m = _VERSION_DIR.match(posixpath.basename(p.rstrip("/")))
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def versions(self) -> list[int]:
        """Committed versions, oldest first."""
        return [v for v in self._version_dirs() if self.fs.exists(join(self.version_path(v), MANIFEST))]

    def latest(self) -> int | None:
        vs = self.versions()
        return vs[-1] if vs else None

    def resolve(self, version: int | str | None) -> int:
        if version in (None, "latest"):
            v = self.latest()
            if v is None:
                raise NotFoundError(f"dataset {self.name!r} has no version in {self.store_uri}")
            return v
        v = int(str(version).lstrip("v"))
        if v not in self.versions():
            raise NotFoundError(f"dataset {self.name!r} has no version {v} in {self.store_uri}")
        return v

    def manifest(self, version: int) -> dict:
        return json.loads(self.fs.cat_file(join(self.version_path(version), MANIFEST)))

    def part_paths(self, version: int) -> list[str]:
        vp = self.version_path(version)
        return [join(vp, f["path"]) for f in self.manifest(version)["files"]]

    def read_table(self, version: int, columns: list[str] | None = None, name: str | None = None) -> pa.Table:
        """The samples of a version (or one of its side tables, e.g. name='_quarantine.parquet')."""
        import pyarrow as pa  # here, not at import: listing datasets needs no Arrow (0.35 s)
        import pyarrow.parquet as pq

        if name is not None:
            with self.fs.open(join(self.version_path(version), name), "rb") as f:
                return pq.read_table(f, columns=columns)
        tables = []
        for p in self.part_paths(version):
            with self.fs.open(p, "rb") as f:
                tables.append(pq.read_table(f, columns=columns))
        if not tables:
            from doodleflow.data.schema import SAMPLE_SCHEMA

            schema = (
                SAMPLE_SCHEMA if columns is None else pa.schema([SAMPLE_SCHEMA.field(c) for c in columns])
            )
            return schema.empty_table()
        return pa.concat_tables(tables)

    # -- shards -------------------------------------------------------------------------------
    def shard_stats(self, key: str) -> dict | None:
        p = join(self.root, "shards", f"{key}.json")
        return json.loads(self.fs.cat_file(p)) if self.fs.exists(p) else None

    def write_shard(self, key: str, data: bytes, stats: dict) -> dict:
        stats = {**stats, "key": key, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write(self.fs, self.shard_path(key), data)
        atomic_write(self.fs, join(self.root, "shards", f"{key}.json"), json.dumps(stats).encode())
        return stats

    def sweep_temporary(self) -> list[str]:
        """Remove the temporary files of dead writers (a killed run, a full disk) from the shard
        folder and every version folder; S3 has none (a failed upload leaves no object)."""
        if self._s3:
            return []
        versions = [self.version_path(v) for v in self._version_dirs()]
        return sweep_temporary([join(self.root, "shards"), *versions])

    # -- committing ---------------------------------------------------------------------------
    def claim_next_version(self, run_id: str) -> int:
        """Own the next free version number (create-if-absent of its _claim file)."""
        claim = json.dumps(
            {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        ).encode()
        v = max(self._version_dirs(), default=0) + 1
        while True:
            try:
                if create_exclusive(self.fs, join(self.version_path(v), "_claim"), claim):
                    return v
            except FileNotFoundError:  # a run releasing this number removed the folder under us
                continue
            except OSError:  # a full disk: leave no empty folder that would push the next number up
                if not self._s3:
                    with contextlib.suppress(OSError):
                        os.rmdir(self.version_path(v))
                raise
            v += 1

    def release_claim(self, version: int) -> None:
        """Give up an uncommitted version (nothing to commit after all); its number can be reused."""
        if not self.fs.exists(join(self.version_path(version), MANIFEST)):
            self.fs.rm(self.version_path(version), recursive=True)

    def _claim_is_live(self, version: int, stale_after: float) -> bool:
        try:
            c = json.loads(self.fs.cat_file(join(self.version_path(version), "_claim")))
        except FileNotFoundError:
            return self._claim_being_made(version)
        except ValueError:
            return False
        if c.get("host") == socket.gethostname():  # same machine: a dead process holds nothing
            try:
                os.kill(int(c["pid"]), 0)
            except (ProcessLookupError, ValueError):
                return False
            except PermissionError:
                pass
        return time.time() - float(c.get("time", 0)) < stale_after

    def _claim_being_made(self, version: int) -> bool:
        """A local claim is made in steps (folder, temporary file, link to `_claim`), so a concurrent
        run can find the folder before `_claim` is there. That run is alive: counting it dead let two
        runs on the same inputs commit two versions. S3's conditional PUT has no such window."""
        if self._s3:
            return False
        path = self.version_path(version)
        try:
            young = time.time() - os.stat(path).st_mtime < CLAIM_GRACE
        except FileNotFoundError:  # released meanwhile
            return False
        return young or live_temporary(path)

    def wait_for_earlier_claims(self, version: int, stale_after: float = 900.0, poll: float = 0.5) -> None:
        """Block until every lower version is committed or its claim is dead (a crashed run), so that
        concurrent refreshes commit in claim order and the later one can see what the earlier made."""
        deadline = time.time() + stale_after
        while time.time() < deadline:
            committed = set(self.versions())
            pending = [
                v
                for v in self._version_dirs()
                if v < version and v not in committed and self._claim_is_live(v, stale_after)
            ]
            if not pending:
                return
            time.sleep(poll)

    def write_table(self, version: int, name: str, table: pa.Table) -> dict:
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue()
        atomic_write(self.fs, join(self.version_path(version), name), data)
        return {
            "path": name,
            "rows": table.num_rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def place_file(self, version: int, src: str, name: str) -> None:
        link_or_copy(self.fs, src, join(self.version_path(version), name))

    def commit(self, version: int, manifest: dict) -> None:
        """The single step that makes a version visible."""
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        if not create_exclusive(self.fs, join(self.version_path(version), MANIFEST), data):
            raise LostRace(
                f"version {version} of {self.name!r} was committed by another run; run again to build on it"
            )


def list_datasets(store_uri: str) -> list[str]:
    fs, root = filesystem(store_uri)
    droot = join(root, "datasets")
    if not fs.exists(droot):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(droot, detail=False))
