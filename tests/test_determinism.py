"""Same photos and options, same cameras: the default path twice, once on a busy CPU; and a wrong focal-length
prior cannot cost SfM views (COLMAP's own guess is tried where mapping falls short)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.engine.sfm import SfmOptions, run_sfm
from benchmarks.determinism import busy_cpus, compare_cameras
from mum.io import load_views
from mum.native_stderr import native_stderr_to

ROOT = Path(__file__).resolve().parents[1]
TUM = ROOT / "demo" / "tum_freiburg"


def _default_path(inputs: list[Path], out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *map(str, inputs), "-o", str(out), "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_default_path_gives_the_same_cameras_on_a_busy_cpu(tmp_path):
    """Two runs of the command-line tool in fresh processes, the second while busy processes compete for every
    core: every entry of cameras.json agrees within 1e-5 of the scene's scale (in practice bit for bit)."""
    inputs = sorted((TUM / "images").iterdir())[:12:2]
    first = _default_path(inputs, tmp_path / "a" / "cameras.json")
    with busy_cpus(2 * (os.cpu_count() or 1)):
        second = _default_path(inputs, tmp_path / "b" / "cameras.json")
    assert [v["pose_source"] for v in first["images"]] == ["sfm"] * len(inputs)
    comparison = compare_cameras(first, second)
    assert comparison["within_1e-5"], comparison


def _tum_views(count: int) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    names, arrays = load_views(sorted((TUM / "images").iterdir())[:count])
    reference = json.loads((TUM / "cameras_reference.json").read_text())["cameras"]
    focal = np.array([reference[n]["intrinsic"][0][0] for n in names], np.float64)
    return names, arrays, focal


@pytest.mark.parametrize("factor", [0.2, 4.0])
def test_a_wrong_focal_prior_registers_as_many_views_as_colmaps_guess(factor):
    """The first three TUM frames with a focal-length prior 0.2× and 4× the reference (a badly wrong network):
    SfM registers at least as many views as with COLMAP's own guess (``1.2 × max(w, h)``). Without the
    fallback to COLMAP's guess the 4× prior registers 2 of 3."""
    names, arrays, focal = _tum_views(3)
    with native_stderr_to(os.devnull):
        guess = run_sfm(arrays, focal, options=SfmOptions(network_focal_prior=False))
        wrong = run_sfm(arrays, factor * focal)
    assert guess.num_registered == 3 and guess.initial_focal == "colmap"
    assert wrong.num_registered >= guess.num_registered
    assert wrong.initial_focal == "colmap"  # the network's prior lost: its first mapping fell short


def test_a_right_focal_prior_costs_nothing_extra():
    """Where every view registers at once the network's prior is kept and COLMAP's guess is never tried."""
    names, arrays, focal = _tum_views(3)
    said: list[str] = []
    with native_stderr_to(os.devnull):
        result = run_sfm(arrays, focal, say=said.append)
    assert result.num_registered == 3 and result.initial_focal == "network"
    assert "focal_fallback" not in result.seconds and not any("COLMAP's own" in line for line in said)


def test_a_preset_without_weights_is_the_same_model_every_time():
    """Random weights (``--model mum-tiny`` without ``--weights``) are seeded, whatever the caller's RNG."""
    import torch

    import heads

    first = heads.load_model("mum-tiny", device="cpu")
    torch.manual_seed(1234)
    second = heads.load_model("mum-tiny", device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
