"""Multi-view stereo on the long-input paths (app/engine/chunked.py: each chunk; app/engine/sequence.py: each
window's registered frames): on a few rendered views with exact depth, a chunked run and a sequence run export
the dense maps the one-pass stereo exports, within a tolerance that the fitted depth (``--dense fitted``) misses."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from app.engine.dense_options import DenseOptions
from app.engine.options import CameraOptions, LongInputOptions, PipelineOptions
from app.engine.pipeline import reconstruct_views
from app.engine.view_source import ArrayViews
from app.exports.project_formats import depth_to_original

W, H, N = 192, 144, 8
# AbsRel against the one-pass stereo; with the fitted depth forced on these paths: 11.1 % (chunked), 14.8 % (sequence)
TOLERANCE = 0.05


@pytest.fixture(scope="module")
def arc():
    """Eight views along an arc in front of a textured wall, floor and ball (tests/test_stereo.py's world, baselines
    ≈ 0.29 m at ≈ 3 m), exact depth."""
    from test_stereo import _world

    from mum.data.render import render_views
    from mum.geometry import intrinsics_from_fov, look_at

    xs = np.linspace(-1.0, 1.0, N)
    eyes = [[x, -2.6 + 0.1 * np.cos(3 * x), 0.6 + 0.1 * np.sin(5 * x)] for x in xs]
    E = np.stack([look_at(np.array(e), np.array([0.2, 1.5, 0.4])) for e in eyes])
    K = np.stack([intrinsics_from_fov(np.deg2rad(60), W, H)] * N)
    out = render_views(_world(), E, K, W, H)
    return {"names": [f"{i:03d}.png" for i in range(N)], "images": list(out["images"]),
            "depth": out["depths"].astype(np.float64)}


@pytest.fixture(scope="module")
def model():
    import heads

    return heads.load_model(heads.DEFAULT_MODEL, device="cpu")


def _run(model, arc, mode: str = "stereo", **long_input):
    options = PipelineOptions(dense=DenseOptions(mode=mode), cameras=CameraOptions(native_log=os.devnull),
                              long_input=LongInputOptions(**long_input))
    return reconstruct_views(model, ArrayViews(arc["names"], arc["images"]), options, warn=lambda _m: None)


def _on_original(recon) -> tuple[np.ndarray, np.ndarray]:
    """The exported depth maps and the cloud's pixels, at the original pixels (nearest)."""
    S = recon.num_views
    depth = np.stack([depth_to_original(recon, i, np.asarray(recon.depth[i]), cv2.INTER_NEAREST) for i in range(S)])
    kept = np.stack([depth_to_original(recon, i, np.asarray(recon.valid[i]).astype(np.float32), cv2.INTER_NEAREST)
                     for i in range(S)]) > 0.5
    return depth, kept & np.isfinite(depth) & (depth > 0)


def _abs_rel(depth: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """AbsRel of ``depth`` against ``reference`` over ``mask`` after one scale for the whole scene."""
    mask = mask & np.isfinite(depth) & (depth > 0) & np.isfinite(reference) & (reference > 0)
    scale = np.median(reference[mask] / depth[mask])
    return float(np.mean(np.abs(scale * depth[mask] - reference[mask]) / reference[mask]))


@pytest.fixture(scope="module")
def one_pass(model, arc):
    runs = {mode: _run(model, arc, mode) for mode in ("stereo", "fitted")}
    return {**{mode: _on_original(recon) for mode, recon in runs.items()},
            "size": runs["stereo"].meta["stereo"]["size"]}


def test_the_tolerance_separates_stereo_from_the_fitted_depth(one_pass, arc):
    """The reference: one-pass stereo is right to ~1 % (exact depth), the fitted depth is off by ~10 %, more than
    :data:`TOLERANCE` from the stereo."""
    stereo, kept = one_pass["stereo"]
    fitted, fitted_kept = one_pass["fitted"]
    assert _abs_rel(stereo, arc["depth"], kept) < 0.03
    assert kept.mean() > 0.5
    assert _abs_rel(fitted, stereo, fitted_kept & kept) > 1.5 * TOLERANCE


@pytest.mark.parametrize("path", ["chunked", "sequence"])
def test_long_paths_export_the_one_pass_stereo(model, arc, one_pass, path):
    """Chunks of 6 views sharing 4 (two chunks), or a sequence in windows of 4 frames (two windows): every view's
    maps come from stereo (``meta["stereo"]``) on the one-pass grid, and agree with the one-pass stereo's (and
    the exact depth) within :data:`TOLERANCE` over the pixels both clouds keep, covering most of what it covers."""
    if path == "chunked":
        recon = _run(model, arc, window=6, overlap=4, sequence=False)
        assert recon.meta["chunks"]["count"] == 2
    else:
        recon = _run(model, arc, window=4, sequence=True)
        assert recon.meta["sequence"]["windows"] == 2
    assert recon.pose_origins().count("sfm") == N
    stereo = recon.meta["stereo"]
    assert list(recon.depth.shape[:0:-1]) == stereo["size"]
    assert stereo["views"] == N and stereo["parts"] == 2 and stereo["size"] == one_pass["size"]
    depth, kept = _on_original(recon)
    reference, reference_kept = one_pass["stereo"]
    assert (kept & reference_kept).sum() > 0.7 * reference_kept.sum()
    assert _abs_rel(depth, reference, kept & reference_kept) < TOLERANCE
    assert _abs_rel(depth, arc["depth"], kept) < TOLERANCE
    assert np.isfinite(depth).all()  # the maps are completed by the fitted depth, as on one pass (fill="maps")


def test_frames_without_registered_cameras_keep_the_fitted_depth():
    """The sequence path's stereo (``DenseOptions.match_network_cameras`` off): a view whose camera is the
    network's is not matched and is no other view's partner; it keeps its fitted depth (the prior, upsampled)
    with the fitted path's validity, while the views with SfM cameras get stereo on the same grid."""
    from test_stereo import _reconstruction, scene as stereo_scene

    from app.engine.multiview_stereo import FILL_CONFIDENCE, add_stereo, choose_neighbours

    scene = stereo_scene.__wrapped__()
    for match_network in (True, False):
        recon = _reconstruction(scene)
        recon.camera_sources = ["sfm", "sfm", "network"]
        options = DenseOptions(size=W, neighbours=2, match_network_cameras=match_network)
        matched = None if match_network else np.array([1, 1, 0], bool)
        neighbours = choose_neighbours(recon, None, np.zeros((0, 3)), 2, matched)
        prior = recon.depth.copy()
        add_stereo(recon, list(scene["images"]), recon.transforms, None, np.zeros((0, 3)), options, lambda _m: None)
        if match_network:
            assert 2 in neighbours[0] and neighbours[2] and recon.meta["stereo"]["views_matched"] == 3
            continue
        assert neighbours == [[1], [0], []]
        assert recon.meta["stereo"]["views_matched"] == 2
        assert np.all(recon.depth_conf[2][recon.valid[2]] == FILL_CONFIDENCE)  # the fitted depth's confidence
        up = cv2.resize(prior[2], (W, H), interpolation=cv2.INTER_NEAREST)
        ok = np.isfinite(up) & np.isfinite(recon.depth[2])
        assert np.median(np.abs(recon.depth[2][ok] / up[ok] - 1)) < 0.02  # the prior (guided upsampling), not stereo
        truth, seen = scene["depth"][2], ok & (scene["depth"][2] > 0)
        assert np.median(np.abs(recon.depth[2][seen] - truth[seen]) / truth[seen]) > 0.05  # the prior's error stays
        stereo, truth = recon.valid[0] & (recon.depth_conf[0] > FILL_CONFIDENCE), scene["depth"][0]
        stereo &= truth > 0
        assert np.median(np.abs(recon.depth[0][stereo] - truth[stereo]) / truth[stereo]) < 0.01
