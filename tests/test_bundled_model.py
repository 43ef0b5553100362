"""The bundled default model (``heads/weights``): it loads by name, and it has really learned poses and depth.

The check runs the model on held-out synthetic scenes (the engine's test seed range, never trained on) and
compares its relative poses with the exact ground truth; a randomly initialised model of the same
architecture must fail the same check, so the test would catch lost or untrained weights."""

from __future__ import annotations

import pytest
import torch

import heads
from app.evaluate import evaluate_sample, summarize, synthetic_samples

SCENES, VIEWS, SIZE = 6, 8, (128, 128)  # the bundled model's training size
# Means over the scenes. Random weights score AUC@30 ≈ 2 %, RRA ≈ 50°, δ<1.25 ≈ 40 %; the bundled model
# AUC@30 ≈ 10 %, RRA ≈ 42°, δ<1.25 ≈ 80 % (MODEL_CARD.md has its full evaluation).
MIN_AUC30 = 5.0  # percent
MAX_RRA = 47.0  # degrees, mean relative rotation error over all view pairs
MIN_DELTA = 65.0  # δ<1.25 in percent after per-image median scaling


@pytest.fixture(scope="module")
def scenes() -> list[dict[str, torch.Tensor]]:
    return [s for _, s in synthetic_samples(SCENES, VIEWS, SIZE)]


def _scores(model, scenes) -> dict[str, float]:
    """Mean pose and depth metrics over ``scenes``, by the same code as ``mum-eval``."""
    return summarize({str(i): evaluate_sample(model, s, points=False) for i, s in enumerate(scenes)})


def test_default_model_is_bundled_and_loads_by_name():
    assert heads.DEFAULT_MODEL in heads.list_models()
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    assert model.cfg == heads.model_config(heads.DEFAULT_MODEL)
    assert model.encoder is not None and model.cfg.image_size % model.patch_size == 0


def test_bundled_model_recovers_poses_and_depth_on_held_out_scenes(scenes):
    m = _scores(heads.load_model(heads.DEFAULT_MODEL, device="cpu"), scenes)
    assert m["auc30"] > MIN_AUC30, f"bundled model: AUC@30 {m['auc30']:.1f} on {SCENES} held-out scenes"
    assert m["rra"] < MAX_RRA, f"bundled model: mean rotation error {m['rra']:.1f}°"
    assert m["delta_1.25"] > MIN_DELTA, f"bundled model: δ<1.25 {m['delta_1.25']:.1f}"


def test_random_weights_fail_the_same_check(scenes):
    torch.manual_seed(0)
    random_model = heads.build_reconstructor(heads.model_config(heads.DEFAULT_MODEL)).eval()
    m = _scores(random_model, scenes)
    assert m["auc30"] < MIN_AUC30 and m["delta_1.25"] < MIN_DELTA, f"random weights pass the check: {m}"
