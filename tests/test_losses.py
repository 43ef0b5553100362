"""Distillation losses: zero on a perfect prediction, positive otherwise; weighting and outlier filtering."""

from __future__ import annotations

import torch
import pytest

from heads.losses import (
    LossConfig,
    camera_loss,
    dense_loss,
    distillation_loss,
    iteration_weights,
    quantile_mask,
)

B, S, H, W = 2, 3, 12, 16


def _targets(g: torch.Generator) -> dict[str, torch.Tensor]:
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    depth = (2 + 0.1 * u + 0.05 * v + 0.3 * torch.rand(B, S, H, W, generator=g))
    pts = torch.stack([(u - W / 2) * depth / 20, (v - H / 2) * depth / 20, depth], dim=-1)
    valid = torch.rand(B, S, H, W, generator=g) > 0.1
    enc = torch.randn(B, S, 9, generator=g)
    return {"pose_enc": enc, "depth": depth, "world_points": pts, "valid": valid}


def _perfect(t: dict[str, torch.Tensor], g: torch.Generator) -> dict[str, object]:
    conf = 1 + torch.rand(B, S, H, W, generator=g) * 3
    return {"pose_enc_list": [t["pose_enc"] + 0.3, t["pose_enc"].clone()], "depth": t["depth"][..., None].clone(),
            "depth_conf": conf, "world_points": t["world_points"].clone(), "world_points_conf": conf.clone()}


def test_every_loss_is_zero_on_perfect_prediction_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    t = _targets(g)
    pred = _perfect(t, g)
    pred["pose_enc_list"] = [t["pose_enc"].clone(), t["pose_enc"].clone()]
    cfg = LossConfig(alpha=0.0)
    out = distillation_loss(pred, t, cfg)
    for k in ("camera", "depth_reg", "depth_grad", "points_reg", "points_grad", "depth", "points", "loss"):
        assert float(out[k]) == pytest.approx(0.0, abs=1e-6), k
    bad = dict(pred)
    bad["pose_enc_list"] = [e + 0.1 * torch.randn(e.shape, generator=g) for e in pred["pose_enc_list"]]
    bad["depth"] = pred["depth"] * (1 + 0.1 * torch.rand(pred["depth"].shape, generator=g))
    bad["world_points"] = pred["world_points"] + 0.1 * torch.randn(pred["world_points"].shape, generator=g)
    out = distillation_loss(bad, t, cfg)
    for k in ("camera", "depth_reg", "depth_grad", "points_reg", "points_grad", "loss"):
        assert float(out[k]) > 1e-4, k


def test_confidence_regulariser_is_negative_log_conf() -> None:
    g = torch.Generator().manual_seed(1)
    t = _targets(g)
    pred = _perfect(t, g)
    cfg = LossConfig(alpha=0.2, valid_quantile=1.0)
    out = dense_loss(pred["depth"], pred["depth_conf"], t["depth"][..., None], t["valid"], cfg, "grad", "depth")
    expected = -0.2 * torch.log(pred["depth_conf"])[t["valid"]].mean()
    assert float(out["depth_conf"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["depth"]) == pytest.approx(float(expected), rel=1e-5)  # regression parts are 0


def test_camera_loss_weights_later_iterations_more() -> None:
    w = iteration_weights(4, 0.6)
    assert sum(w) == pytest.approx(1.0) and w == sorted(w)
    gt = torch.zeros(1, 2, 9)
    early_bad = camera_loss([gt + 1, gt], gt, LossConfig())["camera"]
    late_bad = camera_loss([gt, gt + 1], gt, LossConfig())["camera"]
    assert float(late_bad) > float(early_bad) > 0
    # VGGT sums the mean errors of translation, rotation and field of view: 1 + 1 + 1
    assert float(camera_loss([gt + 1], gt, LossConfig())["camera"]) == pytest.approx(3.0)


def test_quantile_mask_drops_the_largest_residuals() -> None:
    r = torch.arange(100, dtype=torch.float32).reshape(1, 10, 10)
    m = quantile_mask(r, torch.ones_like(r, dtype=torch.bool), 0.98)
    assert int(m.sum()) == 98 and not bool(m.flatten()[-2:].any())


def test_losses_backpropagate() -> None:
    g = torch.Generator().manual_seed(2)
    t = _targets(g)
    pred = _perfect(t, g)
    x = torch.zeros(B, S, H, W, requires_grad=True)
    pred["depth_conf"] = 1 + torch.exp(x)
    pred["depth"] = pred["depth"] + 0.05
    distillation_loss(pred, t, LossConfig())["loss"].backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
