"""Import layering: architecture data at the bottom, commands at the top, nothing reaching up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ednas

PACKAGE = Path(ednas.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if (PACKAGE / sub).is_dir() else [PACKAGE / f"{sub}.py"]


def test_nothing_below_the_commands_imports_them():
    for path in PACKAGE.rglob("*.py"):
        if "commands" in path.relative_to(PACKAGE).parts or path.name == "cli.py":
            continue
        bad = [m for m in _imports(path) if m.startswith("ednas.commands")]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_floors_below_the_peers_do_not_import_them():
    """Peers are built on the evaluator (a Codec, a Predictor), the data and the models, never
    the other way round."""
    for path in [p for sub in ("eval", "data", "models", "arch", "onnx_runtime") for p in _modules(sub)]:
        bad = [m for m in _imports(path) if m.startswith("ednas.peers")]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_latency_does_not_import_search():
    for path in _modules("latency"):
        bad = [m for m in _imports(path) if m.startswith("ednas.search")]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_architecture_data_imports_no_torch():
    code = ("import sys; from ednas.arch.space import SearchSpace; from ednas.arch.zoo import get_arch; "
            "s = SearchSpace.load(); s.sample(__import__('random').Random(0)); get_arch('nanodet_plus_m'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
