"""The packages are layers that import only downward: ``mum`` (encoder, layers, image/video I/O, view
transforms, data engine, pretraining) ← ``heads`` (model, heads, geometry, distillation) ← ``app`` (front ends).

Every module's syntax tree is walked, so imports inside functions (and ``importlib.import_module("...")``
strings) count as much as those at the top of a file; see docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("mum", "heads", "app")  # lowest first: a package may import only itself and those before it


def _imported(tree: ast.AST):
    """``(line, dotted module name)`` for every import in ``tree``, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value


def upward_imports() -> list[str]:
    found = []
    for level, package in enumerate(LAYERS):
        higher = set(LAYERS[level + 1:])
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in _imported(tree):
                top = module.split(".")[0]
                if top in higher:
                    found.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {module}")
    return found


def test_imports_run_only_downward():
    found = upward_imports()
    assert not found, "upward imports (mum ← heads ← app):\n" + "\n".join(found)


def test_the_walk_sees_function_level_imports(tmp_path):
    source = "def f():\n    from app.cli import main\n    import importlib\n    importlib.import_module('heads.x')\n"
    assert [m for _, m in _imported(ast.parse(source))] == ["app.cli", "importlib", "heads.x"]


def test_pycolmap_is_imported_only_through_the_one_helper():
    """``import pycolmap`` installs glog's SIGTERM handler; :func:`mum.pycolmap_import.import_pycolmap` keeps the
    program's own, so every module must import pycolmap through it."""
    helper = ROOT / "mum" / "pycolmap_import.py"
    found = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == helper:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found += [f"{path.relative_to(ROOT)}:{line}" for line, module in _imported(tree)
                      if module.split(".")[0] == "pycolmap"]
    assert not found, "import pycolmap through mum.pycolmap_import.import_pycolmap():\n" + "\n".join(found)
