"""Behaviour stays identical through a refactor (issue 20): one tiny `train pbe` and one tiny EditLoRA
(`train artist --base flux`), run through the CLI as a user runs them (a real Prefect flow run, the
session's local Ray, evaluation and registration in MLflow), leave the same files as the fixture
recorded at the commit before the refactor, tests/fixtures/golden/<family>.json:

- checkpoints and LoRA files: every tensor by name -> dtype, shape, sha256 of its bytes (and mean, std,
  max |x| for the tolerance check below); the latent cache the EditLoRA run builds likewise;
- run.json, state.json, result.json, lora.json, metrics.jsonl, the samples record, eval.json, the
  `--json` result (run id included): their content, normalised (below);
- preview grids, evaluation samples and loss curves: the decoded pixels' sha256, not the PNG bytes;
- the registry: the registered version (ArtifactRecord lineage with every file's digest, base weights
  included), its MLflow params, doodleflow tags and loss history.

Normalised, because it varies between two runs of one commit: wall-clock values, the temporary home
folder, Prefect/MLflow ids and the git commit (`golden.NORMALISED` lists each with its reason; the
fixture repeats it). Nothing else is: a loss that moves in its last bit fails.

Both families are compared whole. PbE's trained values were not reproducible at the recording commit
(e9cb653, recorded then by structure only): its stream ordered each part's rows with a seed salted by
the part's file name, which follows the source photos' mtimes, so two fresh processes trained on
different batches; the order now follows the content (sample ids, parts' sha256: training/pbe/epochs.py
`keyed_order`). `VALUES_REPRODUCIBLE` keeps the switch to compare a family by structure
(golden.structure: run id, config, file layout, tensor names, dtypes and shapes, record fields, image
sizes, the base weights' digests).

Bit for bit where the fixture's torch version and `torch.backends.cpu.get_cpu_capability()` are this
machine's; on another CPU or torch (CI), one notice line, then digests are skipped and floats (losses,
tensor statistics, metrics) must agree to a relative 2e-3, image channel means to 2/255.

Re-record deliberately, never to make a failure go away: a behaviour change is a visible fixture diff in
its own commit:

    DOODLEFLOW_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/architecture/test_behaviour_golden.py -p no:xdist
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess

import pytest

from tests.architecture.golden import (
    NORMALISED,
    VOLATILE_KEYS,
    Normaliser,
    differences,
    dumps,
    lineage_files,
    structure,
    tree_digests,
)

pytestmark = [pytest.mark.slow(seconds=95), pytest.mark.usefixtures("prefect_api", "ray_local")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(REPO, "tests", "fixtures", "golden")
RECORD = os.environ.get("DOODLEFLOW_RECORD_GOLDEN") == "1"
PBE = (
    "train pbe --dataset gold --steps 2 --checkpoint-every 1 --workers 0 --resolution 64 --batch-size 2 "
    "--lr 1e-3 --sample-every 2 --eval-samples 1 --eval-steps 2 --json"
)
EDITLORA = (
    "train artist --artist magic --base flux --steps 2 --checkpoint-every 1 --sample-every 2 "
    "--eval-samples 1 --eval-steps 2 --json"
)


def _cli(args: str, store: str) -> dict:
    from doodleflow.flows.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([*args.split(), "--store", store])
    assert rc == 0, out.getvalue()[-3000:]
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both runs in a fresh home (so the registry's versions start at 1), on one intra-op thread (the
    reduction order of a CPU kernel depends on the thread count; `train pbe --workers 0` trains in this
    process, the EditLoRA's Ray worker gets one CPU, so one thread, from Ray)."""
    import torch

    from tests.photodoodle.helpers import make_pair_dataset
    from tests.training.datasets import make_version

    home = str(tmp_path_factory.mktemp("golden"))
    store = os.path.join(home, "store")
    mp = pytest.MonkeyPatch()
    mp.setenv("DOODLEFLOW_HOME", home)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_version(home, store, "gold", n_images=6)
        pbe = _cli(PBE, store)
        make_pair_dataset(home, store, "magic", 3)
        artist = _cli(EDITLORA, store)["artists"]["magic"]
        yield home, store, pbe, artist
    finally:
        torch.set_num_threads(threads)
        mp.undo()


def _kept_tag(key: str) -> bool:
    return key.startswith("doodleflow.") and key.removeprefix("doodleflow.") not in VOLATILE_KEYS


def _registry(home: str, ref: str, norm: Normaliser) -> dict:
    """The registered version (lineage with its files' digests), its MLflow params, doodleflow tags and
    loss history."""
    from doodleflow.training.registry import Registry

    reg = Registry(home=home)
    name, version = ref.split(":")
    record = reg.show(name, int(version)).to_dict()
    root = record["uri"] if os.path.isdir(record["uri"]) else os.path.dirname(record["uri"])
    record["files"] = lineage_files(record.get("files", []), root, norm)
    for base in record.get("base") or []:
        base["files"] = lineage_files(base["files"], base["root"], norm)
    run = reg.client.get_run(record["run_id"])
    history = reg.client.get_metric_history(record["run_id"], "loss")
    return {
        "record": norm.value(record),
        "params": norm.value(dict(run.data.params)),
        "tags": norm.value({k: v for k, v in run.data.tags.items() if _kept_tag(k)}),
        "loss": sorted({m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}.items()),
    }


def _restarted(store: str, family: str, run_id: str) -> bool:
    """Whether Ray Train restarted the run after a worker failure (its metrics note where it resumed)."""
    with open(os.path.join(store, "runs", family, run_id, "metrics.jsonl")) as f:
        return any("resumed_from" in json.loads(line) for line in f if line.strip())


def _drop_loss_curves(d):
    """The loss curve marks a restart with a line: compared only when neither run restarted."""
    if isinstance(d, dict):
        return {k: _drop_loss_curves(v) for k, v in d.items() if not k.endswith("loss.png")}
    return d


def _digests(home: str, store: str, family: str, result: dict, folders: list[str], ref: str) -> dict:
    norm = Normaliser(home)
    if _restarted(store, family, result["run_id"]):
        assert not RECORD, "the run restarted after a worker failure: record again on a quieter machine"
        print(f"golden {family}: Ray Train restarted the run; its loss curve image is not compared")
        return {"restarted": True, **_digests_of(home, store, result, folders, ref, norm)}
    return _digests_of(home, store, result, folders, ref, norm)


def _digests_of(home: str, store: str, result: dict, folders: list[str], ref: str, norm) -> dict:
    return {
        "run_id": result["run_id"],
        "result": norm.value(result),
        "files": {f: tree_digests(os.path.join(store, f), norm) for f in folders},
        "registry": _registry(home, ref, norm),
    }


def _environment() -> dict:
    import torch

    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


# Whether a family's trained values (weights, losses, samples, metrics) are the same in every run of a
# commit; False records and compares it by structure only. PbE's were not until its stream's order
# stopped depending on the part file names (see the docstring); two fresh processes now agree.
VALUES_REPRODUCIBLE = {"pbe": True, "editlora": True}


def _check(family: str, digests: dict) -> None:
    path = os.path.join(GOLDEN, f"{family}.json")
    env = _environment()
    if RECORD:
        if not VALUES_REPRODUCIBLE[family]:  # values that vary would make every re-recording's diff noise
            digests = structure(digests)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
        doc = {"recorded": {**env, "commit": commit.stdout.strip(), "torch_threads": 1,
                            "values": "all" if VALUES_REPRODUCIBLE[family] else "structure only"},
               "normalised": NORMALISED, "digests": digests}  # fmt: skip
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(dumps(doc) + "\n")
        print(f"recorded {os.path.relpath(path, REPO)}")
        return
    assert os.path.exists(path), f"no {path}: record it with DOODLEFLOW_RECORD_GOLDEN=1 (see the docstring)"
    with open(path) as f:
        golden = json.load(f)
    rec = golden["recorded"]
    exact = (rec["torch"], rec["cpu_capability"]) == (env["torch"], env["cpu_capability"])
    if not exact:
        print(
            f"golden {family}: recorded on torch {rec['torch']} / {rec['cpu_capability']}, this is "
            f"{env['torch']} / {env['cpu_capability']}: digests skipped, floats compared with a tolerance"
        )
    expected = json.loads(json.dumps(golden["digests"]))
    actual = json.loads(json.dumps(digests))  # tuples -> lists, as stored
    if actual.pop("restarted", False):
        expected, actual = _drop_loss_curves(expected), _drop_loss_curves(actual)
    if not VALUES_REPRODUCIBLE[family]:
        print(f"golden {family}: trained values vary between runs at this commit; structure compared")
        expected, actual = structure(expected), structure(actual)
    diff = differences(expected, actual, exact)
    assert not diff, f"{family}: {len(diff)} difference(s) from {path}:\n" + "\n".join(diff[:40])


def test_train_pbe_leaves_the_recorded_checkpoints_samples_and_record(trained):
    home, store, pbe, _ = trained
    folders = ["runs/pbe", "eval/pbe"]
    _check("pbe", _digests(home, store, "pbe", pbe, folders, f"{pbe['registered']['name']}:1"))


def test_editlora_leaves_the_recorded_lora_samples_and_record(trained):
    home, store, _, artist = trained
    folders = ["runs/editlora", "loras", "eval/editlora", "cache/photodoodle"]
    _check("editlora", _digests(home, store, "editlora", artist, folders, "editlora-magic:1"))
