"""Scale breaks (app/engine/scale_breaks.py): a keyframe map whose scale jumps within a network window, as after a
turn on the spot, is found by the network's depth and rescaled back onto the truth; a jump too small to tell
from the network's noise, or one between two windows, is left alone."""

from __future__ import annotations

import numpy as np

from app.engine.keyframe_map import KeyframeMap
from app.engine.scale_breaks import ScaleBreakOptions, repair_scale_breaks, strongest_break
from app.engine.sequence import keyframe_ratios
from mum.io import ViewTransform

SIZE = (64, 48)
K = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
WALL = 5.0  # every point lies on the plane z = 5; the cameras move in x and y, looking along +z
FRAMES = 12


def _true_map() -> KeyframeMap:
    """Keyframes 0–11 stepping along x; each sees 40 points of its own (and the next keyframe sees them too)."""
    rng = np.random.default_rng(0)
    kmap = KeyframeMap(K=K.copy())
    points, seen = [], {f: ([], []) for f in range(FRAMES)}
    for f in range(FRAMES):
        T = np.eye(4)
        T[:3, 3] = -np.array([0.4 * f, 0.05 * f, 0.0])  # camera centre (0.4 f, 0.05 f, 0)
        kmap.poses[f] = T
        centre = -T[:3, 3]
        xy = centre[:2] + rng.uniform(-1.5, 1.5, (40, 2))
        points.append(np.c_[xy, np.full(40, WALL)])
    kmap.points = np.concatenate(points)
    kmap.colors = np.zeros((len(kmap.points), 3), np.uint8)
    for f in range(FRAMES):
        for g in (f, f + 1):
            if g < FRAMES:
                ids = 40 * f + np.arange(40)
                xc = kmap.points[ids] + kmap.poses[g][:3, 3]
                seen[g][0].append(ids)
                seen[g][1].append(xc[:, :2] / xc[:, 2:] * K[0, 0] + K[:2, 2])
    kmap.observations = {f: (np.concatenate(i), np.concatenate(u)) for f, (i, u) in seen.items()}
    return kmap


def _broken(kmap: KeyframeMap, first: int, factor: float) -> KeyframeMap:
    """``kmap`` with keyframes ``first…`` and the points they see first shrunk by ``factor`` about keyframe
    ``first - 1``'s centre, as SfM leaves a map with no points seen on both sides of the break: keyframe
    ``first`` does not see ``first - 1``'s points (every reprojection stays as it was)."""
    observations = dict(kmap.observations)
    idx, uv = observations[first]
    own = idx >= 40 * first
    observations[first] = (idx[own], uv[own])
    out = KeyframeMap(K=K.copy(), points=kmap.points.copy(), colors=kmap.colors.copy(), observations=observations,
                      poses={f: T.copy() for f, T in kmap.poses.items()})
    pivot = -kmap.poses[first - 1][:3, 3]
    for f in range(first, FRAMES):
        out.poses[f][:3, 3] = -(pivot + factor * (-kmap.poses[f][:3, 3] - pivot))
    owned = np.arange(40 * first, 40 * FRAMES)
    out.points[owned] = pivot + factor * (kmap.points[owned] - pivot)
    return out


def _ratios(kmap: KeyframeMap, unit: float = 0.5) -> np.ndarray:
    """The map's units per network unit, for a network that sees the wall at the right depth in its own unit."""
    transform = ViewTransform.crop(SIZE, SIZE, 0, 0, *SIZE)
    depth = {f: np.full(SIZE[::-1], WALL * unit, np.float32) for f in range(FRAMES)}
    return keyframe_ratios(kmap, depth, {f: transform for f in range(FRAMES)})


def _centre_error(kmap: KeyframeMap, truth: KeyframeMap) -> float:
    return max(float(np.linalg.norm(kmap.poses[f][:3, 3] - truth.poses[f][:3, 3])) for f in range(FRAMES))


def test_a_jump_within_a_window_is_found_and_rescaled_back_onto_the_truth():
    truth = _true_map()
    kmap = _broken(truth, 7, 0.1)
    assert _centre_error(kmap, truth) > 1.0
    records = repair_scale_breaks(kmap, _ratios(kmap), [0] * FRAMES)
    assert records == [{"after_keyframe": 6, "first_keyframe": 7, "factor": 10.0, "window": 0}]
    assert _centre_error(kmap, truth) < 1e-9
    assert np.abs(kmap.points - truth.points).max() < 1e-9
    idx, uv = kmap.observations[9]  # the reprojections after the break are as they were
    xc = kmap.points[idx] + kmap.poses[9][:3, 3]
    assert np.abs(xc[:, :2] / xc[:, 2:] * K[0, 0] + K[:2, 2] - uv).max() < 1e-9


def test_a_jump_below_the_threshold_or_between_windows_is_left_alone():
    truth = _true_map()
    small = _broken(truth, 7, 0.5)  # twice: within what the network's depth wanders by
    assert repair_scale_breaks(small, _ratios(small), [0] * FRAMES) == []
    between = _broken(truth, 7, 0.1)  # at the first keyframe of a window: two windows' depths are unrelated
    before = {f: T.copy() for f, T in between.poses.items()}
    assert repair_scale_breaks(between, _ratios(between), [0] * 7 + [1] * 5) == []
    assert all(np.array_equal(before[f], between.poses[f]) for f in range(FRAMES))


def test_a_jump_at_a_window_boundary_is_found_once_the_two_windows_units_are_tied():
    """The break at the first keyframe of the second window, whose network depth is in a unit three times the
    first's: with the windows' units (what the bridge passes measure) the jump is found and repaired."""
    truth = _true_map()
    kmap = _broken(truth, 7, 0.1)
    ratios = _ratios(kmap)
    ratios[7:] *= 3.0  # the second window's depths: numbers three times smaller
    windows = [0] * 7 + [1] * 5
    assert repair_scale_breaks(kmap, ratios.copy(), windows, ties=np.array([np.nan, np.nan])) == []  # not tied
    records = repair_scale_breaks(kmap, ratios, windows, ties=np.array([np.nan, 3.0]))
    assert records == [{"after_keyframe": 6, "first_keyframe": 7, "factor": 10.0, "window": 1}]
    assert _centre_error(kmap, truth) < 1e-9


def test_the_split_that_fits_the_window_best_is_chosen():
    """An odd keyframe (one whose ratio is far off) beside the break does not move the break onto itself."""
    ratios = np.array([12.0, 11.5, 11.0, 0.3, 10.8, 10.5, 0.7, 0.65, 0.6])
    windows = np.zeros(9, int)
    k, factor = strongest_break(ratios, windows, ScaleBreakOptions())
    assert k == 6 and 14 < factor < 18
    assert strongest_break(ratios, np.array([0] * 6 + [1] * 3), ScaleBreakOptions()) is None
