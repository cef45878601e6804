"""The layering, checked over every module's imports.

`edge_runtime` (numpy + stdlib) <- `keras_dyconv` (Keras, librosa) <- `export`:

* edge_runtime imports the standard library, numpy and itself; an interpreter
  (`OPTIONAL_ENGINES`) only inside a function of `edge_runtime/engines.py`, where the engine
  that needs it is opened;
* keras_dyconv never imports export.

Read statically with `ast` (every import statement, at any depth), and confirmed at run time
by importing every edge_runtime module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge_runtime", "keras_dyconv", "export")
#: Interpreters the edge runtime may import, lazily, inside edge_runtime/engines.py.
OPTIONAL_ENGINES = {"ai_edge_litert", "onnxruntime", "tflite_runtime"}
STDLIB = set(sys.stdlib_module_names)


def imports_of(path: Path) -> list[tuple[str, bool, int]]:
    """(top-level package imported, inside a function?, line) of every import in a file."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name.split(".")[0], in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                name = (child.module or "") if child.level == 0 else path.parent.name
                found.append((name.split(".")[0], in_function, child.lineno))
            visit(child, nested)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str) -> list[str]:
    """What breaks the layering in `package`, one line per import."""
    bad = []
    for path in modules(package):
        where = path.relative_to(ROOT)
        for name, in_function, line in imports_of(path):
            if package == "edge_runtime":
                lazy_engine = name in OPTIONAL_ENGINES and in_function and path.name == "engines.py"
                if name not in STDLIB | {"numpy", "edge_runtime"} and not lazy_engine:
                    bad.append(f"{where}:{line} imports {name}")
            elif package == "keras_dyconv" and name == "export":
                bad.append(f"{where}:{line} imports export (keras_dyconv must not)")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_layering_over_every_module(package):
    assert modules(package), f"no modules found under {package}/"
    assert violations(package) == []


def test_the_checker_sees_imports_at_every_depth(tmp_path):
    """The rules catch a forbidden import anywhere in a file (else they pass vacuously)."""
    source = tmp_path / "edge_runtime" / "engines.py"
    source.parent.mkdir()
    source.write_text(
        "import os\nimport numpy as np\nimport keras\n"
        "def f():\n    import onnxruntime\n    from tflite_runtime.interpreter import I\n"
        "class C:\n    def m(self):\n        if True:\n            import librosa\n"
        "from . import config\n"
    )
    found = imports_of(source)
    assert ("keras", False, 3) in found and ("onnxruntime", True, 5) in found
    assert ("librosa", True, 10) in found and ("edge_runtime", False, 11) in found
    assert ("tflite_runtime", True, 6) in found


PROBE = """
import importlib, json, sys
names = sys.argv[1:]
before = set(sys.modules)
for name in names:
    importlib.import_module(name)
new = sorted(set(sys.modules) - before)
allowed = set(sys.stdlib_module_names) | {"numpy", "edge_runtime"}
print(json.dumps({"new": new, "foreign": [m for m in new if m.split(".")[0] not in allowed]}))
"""


def test_importing_every_edge_runtime_module_loads_only_numpy_and_stdlib():
    names = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in modules("edge_runtime")
    ]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["foreign"] == [], f"edge_runtime imported {report['foreign']}"
    # The probe really observed the imports (it would pass vacuously otherwise).
    assert "numpy" in report["new"] and "edge_runtime.engines" in report["new"]
