"""Loading another test folder's fixture module (made-in-code spaces, tables, run folders) by
file path: every folder's `conftest` has the same module name, so `import conftest` would get
whichever was imported first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_test_module(name: str, path: Path) -> ModuleType:
    """A helper module of another test folder (fixtures made in code) by file path, under
    `name`: each folder's `conftest` would otherwise shadow the others'."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module
