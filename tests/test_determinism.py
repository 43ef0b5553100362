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


def _noisy_walk_map(frames: int = 80, points: int = 800):
    """A keyframe map of a sideways walk past a wall of ``points`` points: the first two poses true (the gauge),
    the others, the points and the pixels noisy."""
    import cv2

    from app.engine.keyframe_map import KeyframeMap

    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    world = rng.uniform([-2, -1.5, 4], [0.1 * frames + 2, 1.5, 8], (points, 3))
    kmap = KeyframeMap(K=K.copy(), points=world + rng.normal(scale=0.02, size=world.shape),
                       colors=np.zeros((points, 3), np.uint8))
    for f in range(frames):
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(np.array([0.0, 0.01 * f, 0.0]))[0]  # turning a little as it goes
        T[:3, 3] = [-0.1 * f, 0, 0]
        x = world @ T[:3, :3].T + T[:3, 3]
        uv = x[:, :2] / x[:, 2:] * K[0, 0] + K[:2, 2]
        seen = np.nonzero((uv[:, 0] > 0) & (uv[:, 0] < 640) & (uv[:, 1] > 0) & (uv[:, 1] < 480))[0]
        kmap.observations[f] = (seen, uv[seen] + rng.normal(scale=0.5, size=(len(seen), 2)))
        if f >= 2:
            T[:3, 3] += rng.normal(scale=0.01, size=3)
        kmap.poses[f] = T
    return kmap


def test_the_sequence_paths_bundle_adjustment_is_the_same_every_run():
    """The sequence path's final bundle adjustment, three times on the same map: the same poses and points bit for
    bit. With Ceres on several threads (its default) the Schur complement sums in the order
    the threads finish, and every run gave a different map."""
    import copy

    from app.engine.keyframe_map import adjust

    base = _noisy_walk_map()
    results = []
    for _ in range(3):
        kmap = copy.deepcopy(base)
        adjust(kmap, (640, 480), refine_focal=False)
        results.append((np.stack([kmap.poses[f] for f in kmap.frames]), kmap.points, kmap.K))
    for other in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(results[0], other))


def test_sift_matching_runs_on_one_thread(monkeypatch):
    """Every SIFT matching call SfM makes (all pairs, listed pairs) asks COLMAP for one thread. Pairs matched on
    several threads at once through COLMAP's faiss index got other matches in about one fresh process in five
    (KITTI 07's 54 keyframes), and a different model with them; the runs are too slow for a test, so this checks
    the setting that fixed it."""
    import pycolmap

    threads: list[int] = []
    for name in ("match_exhaustive", "match_image_pairs"):
        real = getattr(pycolmap, name)

        def spy(database, matching_options, *args, _real=real, **kwargs):
            threads.append(matching_options.num_threads)
            return _real(database, matching_options, *args, **kwargs)

        monkeypatch.setattr(pycolmap, name, spy)
    names, arrays, focal = _tum_views(3)
    with native_stderr_to(os.devnull):
        everything = run_sfm(arrays, focal)
        listed = run_sfm(arrays, focal, pairs=[(0, 1), (1, 2)])
    assert everything.num_registered == listed.num_registered == 3
    assert threads == [1, 1]
