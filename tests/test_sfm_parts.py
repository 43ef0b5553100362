"""A scene in parts: photos of two places that share no match. SfM maps each part as its own model; the kept
(largest) model's frame is the scene's, and the other part is joined to it through the network
(:func:`app.engine.cameras.join_other_models`), keeping SfM's cameras within the part."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import heads
from app.engine.dense_options import DenseOptions
from app.engine.options import CameraOptions, PipelineOptions
from app.engine.pipeline import reconstruct_arrays
from mum.io import load_views
from tests.test_default_path import _auc30, _reference

ROOT = Path(__file__).resolve().parents[1]
TUM, BUDDHA = ROOT / "demo" / "tum_freiburg", ROOT / "demo" / "buddha"


def test_a_second_part_of_the_scene_keeps_its_sfm_cameras():
    """4 TUM frames + 4 Buddha photos (at 1600 px, the size SfM sees them): SfM's kept model holds the TUM
    frames, another model 3 of the Buddha photos. Joined, those 3 carry SfM's cameras (AUC@30 against Buddha's
    reference near 100; the network's placement of each view, as before the join, scores ~0) and the points
    and observations of that part come along (sub-pixel reprojection over every registered view)."""
    import cv2

    tum = sorted((TUM / "images").iterdir())[:4]
    buddha = sorted((BUDDHA / "images").iterdir())[:4]
    names_t, arrays_t = load_views(tum)
    names_b, arrays_b = load_views(buddha)
    arrays_b = [cv2.resize(a, (1600, 900), interpolation=cv2.INTER_AREA) for a in arrays_b]
    model = heads.load_model(heads.DEFAULT_MODEL, device="cpu")
    options = PipelineOptions(cameras=CameraOptions(native_log="/dev/null"), dense=DenseOptions(mode="fitted"))
    warnings: list[str] = []
    recon = reconstruct_arrays(model, names_t + names_b, arrays_t + arrays_b, options=options, warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("warning: the views fall into 2 parts")
    sfm = recon.meta["sfm"]
    assert sfm["registered_views"] == 4 and sfm["joined_views"] == 3
    (part,) = sfm["other_models"]
    views = part["view_indices"]
    assert part["joined"] and set(views) <= {4, 5, 6, 7}
    assert [recon.pose_origins()[i] for i in views] == ["sfm"] * 3
    ref = _reference(BUDDHA, [names_b[i - 4] for i in views])
    assert _auc30(recon.cam_from_world[views], ref) > 90
    assert _auc30(recon.cam_from_world[:4], _reference(TUM, names_t)) > 80
    assert sfm["reprojection_px_mean"] < 1.0
