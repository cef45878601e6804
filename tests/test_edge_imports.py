"""`import edge_runtime` (and its frontend modules) pulls in numpy and the stdlib only."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
before = set(sys.modules)
import edge_runtime
import edge_runtime.config, edge_runtime.features, edge_runtime.resample, edge_runtime.wav
new = sorted(set(sys.modules) - before)
allowed = set(sys.stdlib_module_names) | {"numpy", "edge_runtime"}
print(json.dumps({"new": new, "foreign": [m for m in new if m.split(".")[0] not in allowed]}))
"""


def test_edge_runtime_imports_only_numpy_and_stdlib():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["foreign"] == [], f"edge_runtime imported {report['foreign']}"
    # The probe really observed the imports (it would pass vacuously otherwise).
    assert "numpy" in report["new"] and "edge_runtime.features" in report["new"]
