"""Reading a folder of editing pairs into pair jobs (no pixels read), in either of two layouts.

PhotoDoodle layout (showlab/PhotoDoodle `src/jsonl_datasets.py`): a `meta.jsonl` per style, either at
the source root (one style, named after the folder) or in `<root>/<style>/meta.jsonl`. Each line is
an object with `source`, `target` and a caption under `text` (the scripts) or `caption` (the README),
a string or a list of strings; paths are relative to the jsonl's folder.

Plain layout: `N.jpg` (before) and `N_blend.jpg` (after), .jpg/.jpeg/.png, with the caption in
`N.txt` (one caption per non-empty line) or in a `captions.json` mapping "N" to a string or list.

Structural problems fail before any work (`InputError` naming the file and line); per-pair problems
(a missing file or caption) become quarantine rows with a reason.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field

from doodleflow.data.errors import InputError
from doodleflow.data.fsutil import filesystem, join
from doodleflow.data.names import validate_name

META = "meta.jsonl"
CAPTION_KEYS = ("text", "caption", "prompt")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_TRIGGER = re.compile(r"\bsks\w+", re.IGNORECASE)
_PLAIN = re.compile(r"^(?P<stem>.+?)(?P<blend>_blend)?\.(?:jpe?g|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class PairJob:
    pair_id: str
    artist: str
    trigger: str
    captions: tuple[str, ...]
    source_uri: str
    target_uri: str
    source_rel: str
    target_rel: str
    fingerprint: str  # changes when either file or the caption changes
    meta_file: str = ""  # the meta.jsonl that lists the pair, and its line (0: the plain layout)
    meta_line: int = 0


@dataclass
class PairPlan:
    jobs: list[PairJob]
    quarantine: list[dict]
    inputs: dict = field(default_factory=dict)  # what was read: files with sizes, layout


def _uri(source: str, path: str) -> str:
    return f"s3://{path}" if source.startswith("s3://") else path


def _fp(info: dict) -> str:
    """Size + mtime locally, size + ETag on S3: a change check without reading the bytes."""
    tag = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size')}-{tag}"


def reject_row(file: str, line: int, pair_id: str, artist: str, reason: str, detail: str) -> dict:
    return {
        "file": file,
        "line": line,
        "pair_id": pair_id,
        "artist": artist,
        "reason": reason,
        "detail": detail,
    }


def pair_id(artist: str, source_rel: str, target_rel: str) -> str:
    return hashlib.sha256(f"{artist}\0{source_rel}\0{target_rel}".encode()).hexdigest()[:20]


def normalize_captions(value) -> tuple[str, ...]:
    """A caption string or list -> non-empty stripped strings (empty tuple when there is none)."""
    items = value if isinstance(value, list) else [value]
    return tuple(s.strip() for s in items if isinstance(s, str) and s.strip())


def detect_trigger(captions: list[str], fallback: str) -> str:
    """The most common `sks...` token of a style's captions (PhotoDoodle ends each caption with
    "by <trigger>"); the artist name when the captions have none."""
    found = Counter(m.group(0).lower() for c in captions for m in _TRIGGER.finditer(c))
    return found.most_common(1)[0][0] if found else fallback


@dataclass(frozen=True)
class Candidate:
    """One pair as the input describes it, before its files are checked."""

    artist: str
    captions: tuple[str, ...]
    source_rel: str  # relative to the source root
    target_rel: str
    file: str  # where it was described (meta.jsonl or the plain folder)
    line: int


def _listing(fs, root: str) -> dict[str, dict]:
    """Every file under root, relative path -> info (one listing call, also on S3)."""
    found = fs.find(root, detail=True)
    return {posixpath.relpath(p, root): info for p, info in found.items() if info.get("type") != "directory"}


def _style_name(name: str, artist: str | None) -> str:
    if artist:
        return validate_name(artist, "artist name")
    try:
        return validate_name(name, "style folder name")
    except ValueError as e:
        raise InputError(f"{e}; pass --artist to name the style") from e


def _relpath(base_dir: str, rel) -> str | None:
    """`rel` (from meta.jsonl) relative to the source root; None if it is not a path inside it."""
    if not isinstance(rel, str) or not rel.strip() or rel.startswith("/") or "://" in rel:
        return None
    p = posixpath.normpath(posixpath.join(base_dir, rel.strip()))
    return None if p == ".." or p.startswith("../") else p


def parse_meta(text: str, meta_rel: str, artist: str) -> tuple[list[Candidate], list[dict]]:
    """The lines of one meta.jsonl -> candidates and per-line rejects; malformed JSON raises."""
    base = posixpath.dirname(meta_rel)
    out, rejects = [], []
    for no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{meta_rel}:{no}: malformed JSON ({e.msg} at column {e.colno})") from e
        if not isinstance(obj, dict):
            raise InputError(f"{meta_rel}:{no}: expected a JSON object, got {type(obj).__name__}")
        src, tgt = _relpath(base, obj.get("source")), _relpath(base, obj.get("target"))
        caps = next((normalize_captions(obj[k]) for k in CAPTION_KEYS if k in obj), ())
        pid = pair_id(artist, src or str(obj.get("source")), tgt or str(obj.get("target")))
        if src is None or tgt is None:
            bad = "source" if src is None else "target"
            rejects.append(
                reject_row(
                    meta_rel,
                    no,
                    pid,
                    artist,
                    "bad_path",
                    f"{bad} {obj.get(bad)!r} is missing or not a relative path inside the source",
                )
            )
        elif not caps:
            rejects.append(
                reject_row(
                    meta_rel,
                    no,
                    pid,
                    artist,
                    "missing_caption",
                    f"no non-empty caption under any of {list(CAPTION_KEYS)}",
                )
            )
        else:
            out.append(Candidate(artist, caps, src, tgt, meta_rel, no))
    return out, rejects


def _plain_captions(fs, root: str, files: dict[str, dict]) -> dict[str, tuple[str, ...]]:
    caps: dict[str, tuple[str, ...]] = {}
    if "captions.json" in files:
        try:
            obj = json.loads(fs.cat_file(join(root, "captions.json")))
        except json.JSONDecodeError as e:
            raise InputError(f"captions.json: malformed JSON ({e.msg} at line {e.lineno})") from e
        if not isinstance(obj, dict):
            raise InputError("captions.json: expected an object mapping pair number to caption(s)")
        caps.update({str(k): normalize_captions(v) for k, v in obj.items()})
    for rel in files:
        if "/" not in rel and rel.endswith(".txt"):
            caps[rel[:-4]] = normalize_captions(
                fs.cat_file(join(root, rel)).decode("utf-8", "replace").splitlines()
            )
    return caps


def parse_plain(fs, root: str, files: dict[str, dict], artist: str) -> tuple[list[Candidate], list[dict]]:
    """`N.jpg` + `N_blend.jpg` (+ caption) at the top of the source folder."""
    stems: dict[str, dict[str, str]] = {}
    for rel in sorted(files):
        m = _PLAIN.match(rel) if "/" not in rel else None
        if m:
            stems.setdefault(m.group("stem"), {}).setdefault("target" if m.group("blend") else "source", rel)
    caps = _plain_captions(fs, root, files)
    out, rejects = [], []
    for stem, got in sorted(stems.items()):
        src, tgt = got.get("source"), got.get("target")
        pid = pair_id(artist, src or f"{stem}.?", tgt or f"{stem}_blend.?")
        if src is None or tgt is None:
            reason = "missing_source" if src is None else "missing_target"
            rejects.append(
                reject_row(src or tgt, 0, pid, artist, reason, f"pair {stem!r} has only {src or tgt}")
            )
        elif not caps.get(stem):
            rejects.append(
                reject_row(src, 0, pid, artist, "missing_caption", f"no {stem}.txt nor captions.json entry")
            )
        else:
            out.append(Candidate(artist, caps[stem], src, tgt, ".", 0))
    return out, rejects


def _metas(files: dict[str, dict]) -> list[str]:
    """meta.jsonl at the root and one folder down (one style per folder)."""
    return sorted(r for r in files if r == META or (r.endswith("/" + META) and r.count("/") == 1))


def _read_candidates(
    fs, root: str, files: dict, artist: str | None
) -> tuple[list[Candidate], list[dict], str]:
    metas = _metas(files)
    if metas:
        cands, rejects = [], []
        for rel in metas:
            style = posixpath.basename(root) if rel == META else rel.split("/")[0]
            text = fs.cat_file(join(root, rel)).decode("utf-8", "replace")
            c, r = parse_meta(text, rel, _style_name(style, artist))
            cands += c
            rejects += r
        return cands, rejects, "photodoodle"
    if any(_PLAIN.match(r) for r in files if "/" not in r):
        c, r = parse_plain(fs, root, files, _style_name(posixpath.basename(root), artist))
        return c, r, "plain"
    raise InputError(f"{root}: no {META} (at the top or in <style>/{META}) and no N.jpg / N_blend.jpg pairs")


def _check_files(cands: list[Candidate], files: dict):
    """Candidates whose two files exist (first occurrence of each pair) and rejects for the rest."""
    ok, rejects, seen = [], [], set()
    for c in cands:
        pid = pair_id(c.artist, c.source_rel, c.target_rel)
        missing = [(k, p) for k, p in (("source", c.source_rel), ("target", c.target_rel)) if p not in files]
        if missing:
            k, p = missing[0]
            rejects.append(reject_row(c.file, c.line, pid, c.artist, f"missing_{k}", f"{p} does not exist"))
        elif pid in seen:
            rejects.append(
                reject_row(c.file, c.line, pid, c.artist, "duplicate", "the same pair is listed again")
            )
        else:
            seen.add(pid)
            ok.append((pid, c))
    return ok, rejects


def plan_pairs(source: str, artist: str | None = None, trigger: str | None = None) -> PairPlan:
    """Validate the source's structure and list its pairs; reads captions and listings, no pixels."""
    fs, root = filesystem(source)
    if not fs.isdir(root):
        raise InputError(f"{source}: not a directory")
    files = _listing(fs, root)
    cands, rejects, layout = _read_candidates(fs, root, files, artist)
    ok, missing = _check_files(cands, files)
    if not ok and not (rejects or missing):
        raise InputError(f"{source}: the {layout} layout lists no pairs")
    by_artist: dict[str, list[str]] = {}
    for _, c in ok:
        by_artist.setdefault(c.artist, []).extend(c.captions)
    triggers = {a: trigger or detect_trigger(caps, a) for a, caps in by_artist.items()}
    jobs = []
    for pid, c in ok:
        s, t = files[c.source_rel], files[c.target_rel]
        fp = hashlib.sha256(
            json.dumps([_fp(s), _fp(t), c.captions, triggers[c.artist]]).encode()
        ).hexdigest()[:20]
        jobs.append(
            PairJob(
                pid,
                c.artist,
                triggers[c.artist],
                c.captions,
                _uri(source, join(root, c.source_rel)),
                _uri(source, join(root, c.target_rel)),
                c.source_rel,
                c.target_rel,
                fp,
                c.file,
                c.line,
            )
        )
    inputs = {
        "layout": layout,
        "source": source,
        "metas": _metas(files),
        "pairs_listed": len(cands) + len(rejects),
        "artists": dict(sorted(Counter(j.artist for j in jobs).items())),
        "triggers": triggers,
    }
    return PairPlan(sorted(jobs, key=lambda j: j.pair_id), rejects + missing, inputs)
