"""Evaluation metrics against hand-computed values, and a smoke run of ``mum-eval``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mum.geometry import quat_to_mat
from heads.metrics import depth_metrics, pointcloud_metrics, pose_auc, pose_auc30, sample_views


def test_auc_of_known_error_list() -> None:
    # thresholds 1..30: 0.5 is below all 30, 1.5 below 29 (k=2..30), 29.5 below one (k=30), 45 below none
    errors = torch.tensor([0.5, 1.5, 29.5, 45.0])
    auc = pose_auc(errors, torch.zeros(4), 30)
    assert float(auc) == pytest.approx((30 + 29 + 1 + 0) / 4 / 30)
    # pair error is max(RRA, RTA)
    assert float(pose_auc(torch.tensor([0.5]), torch.tensor([10.2]), 30)) == pytest.approx(20 / 30)


def _cameras(S: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    R = quat_to_mat(torch.randn(S, 4, generator=g, dtype=torch.float64))
    return torch.cat([R, torch.randn(S, 3, 1, generator=g, dtype=torch.float64)], dim=-1)


def test_pose_auc_is_100_for_exact_and_similarity_transformed_cameras() -> None:
    E = _cameras(6)
    assert pose_auc30(E, E)["auc30"] == pytest.approx(100.0)
    # a global similarity of the world (rotation Q, scale 3, shift c) leaves relative poses unchanged
    Q = quat_to_mat(torch.tensor([0.1, 0.2, 0.3, 0.9], dtype=torch.float64))
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    R2 = E[:, :, :3] @ Q.T
    t2 = 3 * (E[:, :, 3] + (R2 @ c[:, None])[..., 0])
    E2 = torch.cat([R2, t2[..., None]], dim=-1)
    assert pose_auc30(E2, E)["auc30"] == pytest.approx(100.0)
    assert pose_auc30(_cameras(6, seed=1), E)["auc30"] < 50


def test_depth_metrics_median_scaling_and_hand_values() -> None:
    gt = torch.tensor([[[1.0, 2.0], [4.0, 8.0]]])
    valid = torch.ones_like(gt, dtype=torch.bool)
    assert depth_metrics(5 * gt, gt, valid) == {"abs_rel": pytest.approx(0.0), "delta_1.25": pytest.approx(100.0)}
    pred = torch.tensor([[[1.0, 2.0], [4.0, 16.0]]])  # median 3 → scale 1: errors 0,0,0,1 → AbsRel 1/4
    m = depth_metrics(pred, gt, valid)
    assert m["abs_rel"] == pytest.approx(0.25) and m["delta_1.25"] == pytest.approx(75.0)


def test_pointcloud_metrics_recover_a_similarity_and_measure_offsets() -> None:
    rng = np.random.default_rng(0)
    u, v = np.meshgrid(np.linspace(0, 1, 40), np.linspace(0, 1, 40))
    gt = np.stack([u.ravel(), v.ravel(), 0.2 * np.sin(3 * u.ravel())], 1)
    Q = quat_to_mat(torch.tensor([0.3, -0.1, 0.2, 0.9], dtype=torch.float64)).numpy()
    pred = 2.5 * gt @ Q.T + np.array([1.0, 2.0, 3.0])
    m = pointcloud_metrics(pred, gt)
    assert m["acc_mean"] < 1e-6 and m["comp_median"] < 1e-6 and m["nc_mean"] > 0.999
    noisy = pointcloud_metrics(gt + rng.normal(0, 0.01, gt.shape), gt)
    assert 0.003 < noisy["acc_mean"] < 0.03


def test_sample_views_is_seeded() -> None:
    assert sample_views(30, 10, 0) == sample_views(30, 10, 0) != sample_views(30, 10, 1)
    assert len(set(sample_views(30, 10, 0))) == 10 and sample_views(5, 10) == [0, 1, 2, 3, 4]


def test_mum_eval_smoke(tmp_path: Path) -> None:
    from app.evaluate import main

    out = tmp_path / "eval.json"
    assert main(["--model", "mum-tiny", "--synthetic", "1", "--views", "3", "--size", "32", "32",
                 "--device", "cpu", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    row = res["summary"]["synthetic (1)"]
    assert 0 <= row["auc30"] <= 100 and math.isfinite(row["abs_rel"]) and "acc_mean" in row
    assert row["views"] == 3  # the views each scene really had (a real scene with fewer records its own count)
    assert main(["--model", "mum-tiny"]) == 2  # nothing to evaluate → one-line error
    before = out.read_text()
    assert main(["--model", "mum-tiny", "--synthetic", "1", "--json", str(out)]) == 2  # refused before evaluating
    assert out.read_text() == before


def test_validation_split_scenes_differ_from_test_scenes() -> None:
    from app.evaluate import synthetic_samples

    (test_name, test), = synthetic_samples(1, 2, (32, 32), "test")
    (val_name, val), = synthetic_samples(1, 2, (32, 32), "val")
    assert test_name == "synthetic/0000" and val_name == "synthetic-val/0000"
    assert not torch.equal(test["images"], val["images"])


def test_every_tool_starts_from_the_one_default_model(capsys) -> None:
    """``mum-eval``, ``mum-reconstruct`` and the web app load ``heads.DEFAULT_MODEL`` unless told otherwise, and
    ``mum-eval`` says so when it scores an untrained preset (even with ``--quiet``)."""
    import heads
    from app.cli import build_parser as reconstruct_parser
    from app.evaluate import build_parser as eval_parser
    from app.evaluate import main
    from app.web.model_cache import ModelCache

    assert eval_parser().parse_args([]).model == heads.DEFAULT_MODEL
    assert (reconstruct_parser().parse_args(["x", "-o", "x.ply"]).model or heads.DEFAULT_MODEL) == heads.DEFAULT_MODEL
    assert ModelCache("cpu", loader=lambda *a, **k: None).default == heads.DEFAULT_MODEL
    assert main(["--model", "mum-tiny", "--synthetic", "1", "--views", "2", "--size", "32", "32",
                 "--device", "cpu", "--quiet"]) == 0
    assert "random weights" in capsys.readouterr().err


def test_real_scenes_are_prepared_by_the_users_preprocessing() -> None:
    """``mum-eval --scene`` feeds the network what ``mum-reconstruct`` would (``mum.io.preprocess``), with the
    reference intrinsics mapped by the same view transforms."""
    from app.evaluate import real_sample
    from heads.metrics import sample_views
    from mum.data.readers import read_scene
    from mum.io import preprocess

    path = str(Path(__file__).resolve().parents[1] / "demo" / "synthetic_room")
    sample = real_sample(path, 3, 0, (48, 64))
    scene = read_scene(path)
    idx = sample_views(scene.num_views, 3, 0)
    images, transforms = preprocess([scene.image(i) for i in idx], size=(64, 48))
    assert sample["images"].shape == (3, 3, 48, 64)
    torch.testing.assert_close(sample["images"], images)
    for K, tf, i in zip(sample["intrinsics"], transforms, idx):
        np.testing.assert_allclose(K.numpy(), tf.intrinsics_to_network(scene.intrinsics[i]), rtol=1e-6)
