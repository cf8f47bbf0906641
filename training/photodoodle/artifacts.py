"""Where PhotoDoodle's outputs live in the store, and how they are saved and found again.

    loras/<artist>/<run>/pytorch_lora_weights.safetensors   an EditLoRA (diffusers LoRA format)
    loras/<artist>/<run>/lora.json                           its card: base, rank, trigger, steps; written last
    runs/omnieditor/<run>/lora/...                           the OmniEditor LoRA, same two files
    models/photodoodle/merged-base/<run>/transformer/        OmniEditor fused into the base (diffusers layout)
    models/photodoodle/merged-base/<run>/merged.json         written last

Artist names are validated before they become a path component.
"""

from __future__ import annotations

import datetime as dt
import tempfile

from doodleflow.data.names import validate_name
from doodleflow.infra.errors import NotFoundError
from doodleflow.infra.settings import run_rel
from doodleflow.training.photodoodle.config import WEIGHT_NAME, LoraSettings
from doodleflow.training.runs.store_dirs import list_uploaded, upload_dir

LORA_CARD = "lora.json"
MERGED_CARD = "merged.json"
MERGED_ROOT = "models/photodoodle/merged-base"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def artist_lora_rel(artist: str, run_id: str) -> str:
    return f"loras/{validate_name(artist, 'artist name')}/{validate_name(run_id, 'run id')}"


def omnieditor_lora_rel(run_id: str, step: int | None = None) -> str:
    """The OmniEditor LoRA in its run's folder: `lora/`, or `lora-step<N>/` saved from the
    checkpoint a person picked (training/photodoodle/picked.py)."""
    name = "lora" if step is None else f"lora-step{step}"
    return f"{run_rel('omnieditor', validate_name(run_id, 'run id'))}/{name}"


def save_lora(store: str, rel: str, transformer, settings: LoraSettings, card: dict) -> dict:
    """Write the adapter of `transformer` to `<store>/<rel>/` with its card; returns the card."""
    with tempfile.TemporaryDirectory() as d:
        from doodleflow.training.photodoodle.lora import save_lora_dir  # torch and peft: only when writing

        save_lora_dir(transformer, settings, d)
        card = {
            **card,
            "created_at": now(),
            "rank": settings.rank,
            "alpha": settings.alpha,
            "targets": list(settings.targets),
            "weight_name": WEIGHT_NAME,
        }
        uri = upload_dir(d, store, rel, LORA_CARD, card)
    return {**card, "uri": f"{uri}/{WEIGHT_NAME}", "dir": uri}


def find_lora(store: str, artist: str, run_id: str | None = None) -> dict:
    """The card (with `uri` of the weights file) of the artist's newest LoRA, or of `run_id`."""
    cards = list_uploaded(store, f"loras/{validate_name(artist, 'artist name')}", LORA_CARD)
    if run_id is not None:
        cards = [c for c in cards if c["_name"] == run_id]
    if not cards:
        raise NotFoundError(f"no LoRA for artist {artist!r}{f' run {run_id!r}' if run_id else ''} in {store}")
    c = cards[-1]
    return {**c, "dir": c["_uri"], "uri": f"{c['_uri']}/{c.get('weight_name', WEIGHT_NAME)}"}


def save_merged_base(store: str, run_id: str, transformer, card: dict) -> dict:
    """Save the (fused) transformer in diffusers' layout under models/photodoodle/merged-base/<run>/."""
    with tempfile.TemporaryDirectory() as d:
        transformer.save_pretrained(f"{d}/transformer")
        card = {**card, "created_at": now()}
        uri = upload_dir(d, store, f"{MERGED_ROOT}/{validate_name(run_id, 'run id')}", MERGED_CARD, card)
    return {**card, "dir": uri, "transformer": f"{uri}/transformer"}


def find_merged_base(store: str, base_identity: dict) -> dict | None:
    """The newest merged base made from the same base weights (preset, pretrained dir), or None."""
    cards = [c for c in list_uploaded(store, MERGED_ROOT, MERGED_CARD) if c.get("base") == base_identity]
    if not cards:
        return None
    c = cards[-1]
    return {**c, "dir": c["_uri"], "transformer": f"{c['_uri']}/transformer"}


def require_merged_base(store: str, source) -> dict:
    """The merged OmniEditor base an EditLoRA on `source`'s weights trains on; refused when there is none."""
    merged = find_merged_base(store, source.base_identity())
    if merged is None:
        raise NotFoundError(
            f"no merged OmniEditor base for preset {source.preset} in {store}: run `doodleflow train omnieditor` "
            "first, or pass --base flux to train this EditLoRA on the plain FLUX base"
        )
    return merged


def transformer_dir(base: str) -> str:
    """`--base DIR`: a diffusers transformer folder (its config.json), local or in the store. A folder
    holding one as `transformer/` (a merged base's run folder, a FLUX pipeline folder) resolves to it;
    anything else is refused here, before a server starts (diffusers would take a missing local path
    for a model hub id)."""
    from doodleflow.data.fsutil import filesystem, join
    from doodleflow.infra.errors import ConfigError

    fs, path = filesystem(base)
    hint = (
        "pass a diffusers transformer folder (a merged base's .../transformer), 'flux', or --base-model REF"
    )
    if not fs.isdir(path):
        raise ConfigError(f"--base {base}: no such directory; {hint}")
    if fs.exists(join(path, "config.json")):
        return base
    if fs.exists(join(path, "transformer", "config.json")):
        return f"{base.rstrip('/')}/transformer"
    raise ConfigError(
        f"--base {base}: not a diffusers transformer folder (no config.json, no transformer/); {hint}"
    )


def base_choice(store: str, source) -> tuple[str | None, str]:
    """(the transformer an EditLoRA on `source` trains on, None for the plain base; what it is:
    "merged-omnieditor", "flux" or "given"). The default is the newest merged base of the same base
    weights (refused when there is none); a given folder that is a saved merged base counts as one."""
    from doodleflow.training.photodoodle.config import PLAIN_BASE

    given = source.base_transformer
    if given == PLAIN_BASE:
        return None, "flux"
    if given:
        merged = [c for c in list_uploaded(store, MERGED_ROOT, MERGED_CARD)
                  if f"{c['_uri']}/transformer" == given.rstrip("/")]  # fmt: skip
        return given, "merged-omnieditor" if merged else "given"
    return require_merged_base(store, source)["transformer"], "merged-omnieditor"
