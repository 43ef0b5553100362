"""Benchmark results record the run that made them (benchmarks/provenance.py)."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import provenance

ROOT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A throwaway git repository standing in for the project's root."""
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "benchmarks" / "x.py").write_text("print(1)\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(provenance, "ROOT", root)
    return root


def test_commit_and_dirty_flag(repo):
    head = git(repo, "rev-parse", "HEAD").strip()
    assert provenance.git_state() == {"commit": head, "dirty": False, "dirty_paths": []}
    (repo / "benchmarks" / "results" / "x_cpu.json").write_text("{}")  # the run's own output: not dirty
    assert provenance.git_state()["dirty"] is False
    (repo / "benchmarks" / "x.py").write_text("print(2)\n")
    state = provenance.git_state()
    assert state["commit"] == head and state["dirty"] is True and state["dirty_paths"] == ["benchmarks/x.py"]


def test_outside_git_records_none(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    assert provenance.git_state() == {"commit": None, "dirty": None, "dirty_paths": []}


def test_written_results_carry_the_run(repo, tmp_path):
    run = provenance.start_run([str(repo / "benchmarks" / "x.py"), "--frames", "10 20"])
    out = provenance.write_results(tmp_path / "out" / "x_cpu.json", {"rows": [1, 2], "run": "stale"}, run)
    data = json.loads(out.read_text())
    assert data["rows"] == [1, 2]
    r = data["run"]
    assert r["command"] == "python benchmarks/x.py --frames '10 20'"
    assert r["commit"] == git(repo, "rev-parse", "HEAD").strip() and r["dirty"] is False
    assert r["started"] <= r["finished"] and r["wall_s"] >= 0
    assert len(r["load_average_start"]) == 3 and len(r["load_average_end"]) == 3
    assert r["machine"]["logical_cpus"] >= 1 and r["machine"]["ram_gib"] > 0 and r["machine"]["cpu"]
    assert r["versions"]["torch"] and r["versions"]["pycolmap"] and r["versions"]["python"]
    assert "_t0" not in r
    assert not list(out.parent.glob(".*.tmp"))  # written through a temporary file renamed into place


def test_every_benchmark_script_writes_the_run():
    """A benchmark script that writes a results file must do so through write_results (or record a run with
    finish_run): a new script that writes its JSON by hand fails here."""
    scripts = [p for p in sorted((ROOT / "benchmarks").glob("*.py")) if p.name not in ("provenance.py", "hardware.py", "claims.py")]
    assert scripts
    missing = []
    for path in scripts:
        calls = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
                 for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)}
        if not calls & {"write_results", "finish_run"}:
            missing.append(path.name)
    assert not missing, f"benchmark scripts that do not record their run: {missing}"
