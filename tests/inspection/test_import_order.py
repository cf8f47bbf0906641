"""FiftyOne stays importable after the registry ran in the same process (mlflow imports the
importlib_metadata backport, whose metadata lookups make FiftyOne's eta fail to import)."""

from __future__ import annotations

import subprocess
import sys


def test_fiftyone_imports_after_mlflow():
    code = (
        "import mlflow, importlib.metadata as m\n"
        "assert type(m.metadata('voxel51-eta')).__module__.startswith('importlib_metadata')\n"
        "import data.inspection\n"
        "import fiftyone as fo\n"
        "print('fiftyone', fo.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("fiftyone ")
    # The lookup is only lenient while eta loads: the process keeps the backport's behaviour.
    check = code.replace(
        "print('fiftyone', fo.__version__)",
        "assert type(m.metadata('voxel51-eta')).__module__.startswith('importlib_metadata')",
    )
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=300).returncode == 0
