"""The packages are layers that import only downward: ``mum`` (encoder, layers, image/video I/O, view
transforms, data engine, pretraining) ← ``heads`` (model, heads, geometry, distillation) ← ``app``; inside
``app``, ``app.engine`` (the reconstruction) ← ``app.exports`` (files and pictures of a result) ← the front ends
(``app.cli``, ``app.features``, ``app.train``, ``app.evaluate``, ``app.web``), and no front end imports another.

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


def _imports_under(folder: Path):
    """``(path, line, dotted module name)`` for every import of every module below ``folder``, files in order."""
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in _imported(tree):
            yield path, line, module


def upward_imports() -> list[str]:
    found = []
    for level, package in enumerate(LAYERS):
        higher = set(LAYERS[level + 1:])
        for path, line, module in _imports_under(ROOT / package):
            if module.split(".")[0] in higher:
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
    found = [f"{path.relative_to(ROOT)}:{line}" for package in LAYERS
             for path, line, module in _imports_under(ROOT / package)
             if path != helper and module.split(".")[0] == "pycolmap"]
    assert not found, "import pycolmap through mum.pycolmap_import.import_pycolmap():\n" + "\n".join(found)


APP_LAYERS = ("app.engine", "app.exports")  # lowest first; every other module of app/ is a front end


def _app_part(module: str) -> str | None:
    """The layer or front end an ``app.…`` module belongs to: ``app.engine``, ``app.exports`` or the front end's
    top name (``app.cli``, ``app.web``, …); None outside ``app`` and for ``app`` itself."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def app_violations(root: Path = ROOT) -> list[str]:
    """Imports inside ``app`` that go up (engine → exports/front end, exports → front end) or across (a front end
    importing another front end)."""
    found = []
    for path, line, module in _imports_under(root / "app"):
        rel = path.relative_to(root).with_suffix("")
        own = _app_part(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
        other = _app_part(module)
        if own is None or other is None or other == own:
            continue
        if own in APP_LAYERS:
            allowed = APP_LAYERS[:APP_LAYERS.index(own)]
        else:  # a front end: the engine and the exports, no other front end
            allowed = APP_LAYERS
        if other not in allowed:
            found.append(f"{path.relative_to(root)}:{line}: {own} imports {module}")
    return found


def test_app_front_ends_sit_on_the_engine_and_exports():
    found = app_violations()
    assert not found, "imports inside app against engine ← exports ← front ends:\n" + "\n".join(found)


def test_app_layer_check_sees_an_engine_module_importing_a_front_end(tmp_path):
    (tmp_path / "app" / "engine").mkdir(parents=True)
    (tmp_path / "app" / "engine" / "sfm.py").write_text("def f():\n    from app.web.server import main\n")
    (tmp_path / "app" / "cli.py").write_text("import app.web.handlers\nfrom app.engine import sfm\n")
    (tmp_path / "app" / "exports").mkdir()
    (tmp_path / "app" / "exports" / "ply.py").write_text("from app.engine.reconstruction import PointCloud\n")
    found = app_violations(tmp_path)
    assert sorted(found) == ["app/cli.py:1: app.cli imports app.web.handlers",
                             "app/engine/sfm.py:2: app.engine imports app.web.server"]


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Each module of ``mum``, ``heads`` and ``app`` → the project modules it imports, wherever the import stands
    (module level, inside a function, under ``TYPE_CHECKING``; relative imports resolved). ``from a.b import c``
    names the module ``a.b.c`` when there is one, else ``a.b``."""
    paths = {_module_name(p, root): p for package in LAYERS for p in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                modules = {f"{base}.{alias.name}" for alias in node.names} & paths.keys()
                targets.update(modules if len(modules) == len(node.names) else modules | {base})
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (the strongly connected
    components of more than one module), each as a closed path ``a → b → … → a`` through the group."""
    order = list(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in order:
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:  # one closed path through the group's first module, by breadth-first search
        start = min(group)
        came_from = {start: None}
        frontier = [start]
        end = None
        while frontier and end is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & group):
                    if w == start:
                        end = v
                        break
                    if w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        path = [start]
        while end is not None and end != start:
            path.insert(1, end)
            end = came_from[end]
        cycles.append(path + [start] + [f"(group: {', '.join(sorted(group))})"])
    return cycles


def test_no_circle_of_imports():
    cycles = import_cycles(import_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" → ".join(c[:-1]) + " " + c[-1] for c in cycles)


def test_cycle_check_sees_function_level_and_type_checking_imports(tmp_path):
    (tmp_path / "app" / "engine").mkdir(parents=True)
    (tmp_path / "mum").mkdir()
    (tmp_path / "heads").mkdir()
    (tmp_path / "app" / "engine" / "__init__.py").write_text("")
    (tmp_path / "app" / "engine" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                      "    from app.engine.b import B\n")
    (tmp_path / "app" / "engine" / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "app" / "engine" / "c.py").write_text("import app.engine.a\n")
    (tmp_path / "app" / "engine" / "d.py").write_text("from app.engine import a, c\n")  # imports, is not imported
    graph = import_graph(tmp_path)
    assert graph["app.engine.b"] == {"app.engine.c"} and graph["app.engine.d"] == {"app.engine.a", "app.engine.c"}
    assert [c[:-1] for c in import_cycles(graph)] == [["app.engine.a", "app.engine.b", "app.engine.c", "app.engine.a"]]
