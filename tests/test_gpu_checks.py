"""benchmarks/gpu_checks.py (the one GPU script) runs on a machine that has PyTorch but not pycolmap, open3d, gradio,
trimesh, plyfile or kornia: its smoke mode runs every stage's code at toy sizes on the CPU with those modules made
unimportable, and writes one results JSON with the commit, device and versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_attention import write_fake_xformers

REPO = Path(__file__).resolve().parents[1]
ABSENT = ("pycolmap", "open3d", "gradio", "gradio_client", "trimesh", "plyfile", "kornia")  # not on the lent GPU machine


def poisoned_env(tmp_path: Path) -> dict:
    """An environment whose Python processes (and their children) cannot import :data:`ABSENT`."""
    site = tmp_path / "poison"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def smoke(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = poisoned_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import pycolmap"], env=env, capture_output=True, text=True, timeout=60)
    assert blocked.returncode != 0 and "import of pycolmap halted" in blocked.stderr  # the poison works
    fake = write_fake_xformers(tmp_path / "xformers-other-torch")
    out = tmp_path / "results"
    result = subprocess.run([sys.executable, "benchmarks/gpu_checks.py", "--cpu-smoke", "--xformers", str(fake),
                             "--out-dir", str(out), "--budget-s", "3000", *extra],
                            env=env, capture_output=True, text=True, timeout=3000, cwd=REPO)
    files = list(out.glob("gpu_checks_*_cpu_smoke.json"))
    assert len(files) == 1, result.stdout + result.stderr
    return result, json.loads(files[0].read_text())


def check_common(result: subprocess.CompletedProcess, report: dict) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run, env = report["run"], report["environment"]
    assert run["commit"] and "xformers" in run["versions"] and run["command"].startswith("python benchmarks/gpu_checks.py")
    for key in ("device", "torch", "cuda", "cudnn", "xformers_kernels_run"):
        assert key in env
    assert env["attention_verdicts"]["sdpa float32 d=48"] == "works"
    if "skipped" not in report["tests"]:
        assert "passed" in report["tests"]["summary"] and report["tests"]["returncode"] == 0
    xf = report["xformers"]
    assert "passed" in xf["tests"]["summary"] and xf["tests"]["returncode"] == 0  # the GPU tests import without them
    assert xf["kernels_run"] is False and "built for torch 2.10.0+cu128" in xf["versions"]
    assert xf["self_check_auto"]["as_expected"] and xf["self_check_explicit_xformers"]["as_expected"]
    rows = report["predict"]["results"]["rows"]
    assert [r["frames"] for r in rows] == [1, 2] and all(r["median_s"] > 0 for r in rows)
    train = report["train"]["results"]["rows"]
    assert [r["stage"] for r in train] == ["pretrain", "distill"] and all(r["batch"] == 2 for r in train)
    assert set(report["targets"]) >= {"mum_vitl16_1000_frames_s", "speedup_over_vggt_1b_at_200_frames"}


def test_gpu_checks_smoke_without_the_reconstruction_dependencies(tmp_path):
    result, report = smoke(tmp_path, "--no-compile", "--skip", "tests")  # the xformers stage runs the same tests
    check_common(result, report)
    assert report["encoder"]["results"]["rows"][0]["compiled"] is False
    assert report["train_compiled"] == {"skipped": "--no-compile"}


@pytest.mark.slow
def test_gpu_checks_smoke_with_compilation(tmp_path):
    """Every stage, torch.compile included (several minutes of CPU compilation)."""
    result, report = smoke(tmp_path)
    check_common(result, report)
    assert [r["compiled"] for r in report["encoder"]["results"]["rows"]] == [False, True]
    assert all(r["compiled"] and r["first_step_s"] > 0 for r in report["train_compiled"]["results"]["rows"])
