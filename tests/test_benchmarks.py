"""The benchmarks behind the docs' figures still run and write what the claims check reads: small runs of
``benchmarks/real_scenes.py`` and ``benchmarks/model_eval.py`` into a temporary file (minutes each: slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_recorded(results: dict, script: str) -> None:
    run_block = results["run"]
    assert run_block["command"].startswith(f"python benchmarks/{script}")
    assert run_block["commit"] and len(run_block["load_average_end"]) == 3 and run_block["versions"]["pycolmap"]


@pytest.mark.slow
def test_real_scenes_demo_rows(tmp_path):
    out = tmp_path / "real_scenes.json"
    run("real_scenes.py", "--quick", "--parts", "scenes", "--plain-seeds", "0", "1", "--out", str(out))
    results = json.loads(out.read_text())
    assert_recorded(results, "real_scenes.py")
    from benchmarks.real_scenes import scenes_table, timing_table

    assert set(results["scenes"]) == {"demo/tum_freiburg", "demo/sacre_coeur", "demo/buddha"}
    for name, row in results["scenes"].items():
        plain = row["plain_sfm"]
        assert plain["seeds"] == [0, 1] and len(plain["runs"]) == 2
        assert plain["min"]["auc30"] <= plain["auc30"] <= plain["max"]["auc30"]
        assert row["default"]["auc30"] > 90 and row["default"]["registered"] == row["views"], name
        d = row["default"]
        assert sum(d["stages_s"].values()) == pytest.approx(d["seconds"])
        assert 0 < d["disagreement_cloud"] < d["disagreement_all"]
    assert len(scenes_table(results).splitlines()) == len(timing_table(results).splitlines()) == 2 + 3


@pytest.mark.slow
def test_model_eval_small(tmp_path):
    out = tmp_path / "model_eval.json"
    run("model_eval.py", "--scenes", "2", "--out", str(out))
    results = json.loads(out.read_text())
    assert_recorded(results, "model_eval.py")
    from benchmarks.model_eval import real_table, synthetic_table

    assert set(results["evaluations"]) == {"mum-default", "mum-tiny"}
    assert sum(k["scenes"] for k in results["synthetic_by_kind"]["mum-default"].values()) == 2
    assert len(synthetic_table(results).splitlines()) == 4 and len(real_table(results).splitlines()) == 6


@pytest.mark.slow
def test_synthetic_sfm_runs_once_per_seed(tmp_path):
    """Plain SfM on the data engine's scenes runs (it once called ``run_plain_sfm`` without the seed it needs) once
    per seed, and gives the spread over the seeds (pycolmap's defaults are multi-threaded: a seed fixes no result)."""
    out = tmp_path / "synthetic_sfm.json"
    run("synthetic_sfm.py", "--scenes", "1", "--views", "4", "--kinds", "object", "--seeds", "0", "1", "--out", str(out))
    results = json.loads(out.read_text())
    assert_recorded(results, "synthetic_sfm.py")
    for label in ("stochastic", "periodic"):
        r = results[label]
        assert r["per_seed"]["seeds"] == [0, 1] and len(r["per_seed"]["auc30"]) == 2 and r["views"] == 4, label
        assert r["mean_auc30_min"] <= r["mean_auc30"] <= r["mean_auc30_max"] and 0 <= r["registered_min"] <= 4
        (scene,) = r["scenes"].values()
        assert [x["seed"] for x in scene["runs"]] == [0, 1]


def test_dense_benchmark_groups_views_that_see_a_common_surface():
    """``benchmarks/dense.py`` scales each group of views that see a common surface on its own: two views of a
    wall are one group, a third turned around to face the opposite wall is another (what a walk that turns on the
    spot between two views gives); the same third view facing the first wall joins them."""
    from types import SimpleNamespace

    import numpy as np

    from benchmarks.dense import view_groups
    from mum.geometry import intrinsics_from_fov, look_at

    W, H = 64, 48
    K = intrinsics_from_fov(np.deg2rad(60), W, H)

    def view(eye, target, wall_y):  # depth of a wall y = wall_y seen from eye towards target
        cam = np.eye(4)
        cam[:3] = look_at(np.array(eye, float), np.array(target, float))
        v, u = np.mgrid[0:H, 0:W]
        rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T @ cam[:3, :3]  # world, per unit z
        centre = -cam[:3, :3].T @ cam[:3, 3]
        return cam, (wall_y - centre[1]) / rays[..., 1]

    def scene(views):
        cams, depths = zip(*views)
        return SimpleNamespace(depths=list(depths), intrinsics=[K] * len(views),
                               cam_from_world_4x4=lambda: np.stack(cams))

    a, b = view([0, 0, 1], [0, 5, 1], 5.0), view([0.3, 0, 1], [0.3, 5, 1], 5.0)
    behind = view([0.3, 0, 1], [0.3, -5, 1], -5.0)
    assert list(view_groups(scene([a, b, behind]))) == [0, 0, 1]
    assert list(view_groups(scene([a, b, view([0.6, 0, 1], [0.6, 5, 1], 5.0)]))) == [0, 0, 0]


def test_matching_determinism_counts_each_settings_outcomes(tmp_path):
    """Two fresh-process runs per setting on the synthetic demo room's 12 views: every pair matched each time,
    the outcomes counted per setting, and on one thread (what SfM uses) one outcome."""
    out = tmp_path / "matching.json"
    run("matching_determinism.py", "--images", "demo/synthetic_room/images", "--runs", "2", "--out", str(out))
    results = json.loads(out.read_text())
    assert_recorded(results, "matching_determinism.py")
    assert results["views"] == 12 and set(results["settings"]) == {"every core", "one thread"}
    for row in results["settings"].values():
        assert row["pairs"] == 12 * 11 // 2 and sum(row["outcomes"].values()) == 2
        assert row["runs_like_the_most_common"] + row["runs_differing_from_the_most_common"] == 2
    assert results["settings"]["one thread"]["distinct_outcomes"] == 1
