"""Multi-view stereo on known cameras: the per-pixel depth of one reference view by photometric consistency with
its source views (:func:`match_view`).

A *hypothesis* is a whole depth map of the reference view. Every pixel of it is unprojected with its own depth,
projected into a source view and the source image sampled there (``cv2.remap``, bilinear): the warped source
image. Its agreement with the reference is the normalised cross-correlation (NCC) over a square window around
each pixel, computed for all pixels at once with box filters. The window thus lies on the surface the hypothesis
describes, not on a fronto-parallel plane, wherever the hypothesis is shaped (a prior, or a coarser level's
result). Per pixel, the NCCs of the source views are aggregated robustly by the mean of the ``best_k`` highest
(a source view that is occluded there, or sees it at a grazing angle, does not spoil it); a source view in which
the pixel falls outside the image or behind the camera contributes an NCC of 0 (no evidence).

Hypotheses, coarse to fine (an image pyramid of ``levels`` levels, halving the resolution each time):

* at the coarsest level, with a **prior** (the network's depth fitted to the SfM points, upsampled): the prior
  scaled by ``exp(s)`` for ``prior_steps`` values of ``s`` spanning ``±log(1 + prior_range)``; without a prior, a
  **plane sweep**: ``sweep_planes`` fronto-parallel planes uniform in inverse depth over ``depth_range``;
* at every finer level: the coarser result, upsampled (bilinear in log-depth); except at the finest level,
  each pixel first tries the nearest and the farthest depth within ``PROPAGATION_RADIUS`` pixels instead (a
  vectorised propagation: at object boundaries the coarser windows mix foreground and background); then the
  winner scaled by ``exp(s)`` for ``refine_steps`` values of ``s`` spanning ±1 step of the coarser level.

Each level keeps per pixel the hypothesis of the highest aggregated NCC (winner takes all), refined to sub-step
by a parabola through it and its two neighbours. Returns the depth, that NCC (the photometric score) and the
reference's texture (the standard deviation of its intensity in the window), from which the caller judges
where matching is ambiguous.

Conventions: ``image`` grey float32 in [0, 1] ``[H, W]``; ``K`` in pixels of that grid (pixel centres at integer
coordinates); ``cam_from_world`` 4×4 OpenCV camera-from-world; depth is camera z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

PROPAGATION_RADIUS = 2  # pixels around a pixel whose nearest and farthest depths it tries at each finer level
MAX_DEPTH_RATIO = 1000.0  # the plane sweep's far plane at most this many times its near plane
MAX_LOG_STEP = 0.5  # the finer levels search at most ±exp(0.5) around the coarser depth

@dataclass(frozen=True)
class StereoOptions:
    """``window``: NCC window side (pixels of the finest level, odd; coarser levels use the same side);
    ``best_k``: source views whose NCC is averaged per pixel; ``prior_range``, ``prior_steps``: relative depth
    range and hypotheses around a prior at the coarsest level; ``sweep_planes``: the plane sweep's planes (0: no
    sweep, hypotheses around the prior only);
    ``refine_steps``: hypotheses per finer level; ``levels``: pyramid levels; ``texture_eps``: intensity
    variance added to each window's (the NCC of a window with less texture than that tends to 0)."""

    window: int = 7
    best_k: int = 2
    prior_range: float = 0.3
    prior_steps: int = 13
    sweep_planes: int = 64
    refine_steps: int = 5
    levels: int = 3
    texture_eps: float = 1e-4

    def check(self) -> None:
        """Raise ``ValueError`` naming the first option out of range."""
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError("window must be odd and at least 3")
        for name in ("best_k", "levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("prior_steps", "refine_steps"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must be at least 3")
        if self.sweep_planes != 0 and self.sweep_planes < 3:
            raise ValueError("sweep_planes must be 0 (no plane sweep) or at least 3")
        if not self.prior_range > 0:
            raise ValueError("prior_range must be positive")


@dataclass
class View:
    """One view for matching: ``image`` grey float32 ``[H, W]`` in [0, 1], ``K`` ``[3, 3]`` in its pixels,
    ``cam_from_world`` ``[4, 4]``."""

    image: np.ndarray
    K: np.ndarray
    cam_from_world: np.ndarray

    def halved(self) -> "View":
        """The view at half resolution (area-averaged; pixel centres: ``u' = (u + ½) / 2 − ½``)."""
        H, W = self.image.shape
        small = cv2.resize(self.image, ((W + 1) // 2, (H + 1) // 2), interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / W, small.shape[0] / H
        S = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        return View(small, S @ self.K, self.cam_from_world)


@dataclass
class Match:
    """The result for one reference view, ``[H, W]`` float32 each: ``depth`` (camera z), ``score`` (the
    aggregated NCC of the chosen depth, in [-1, 1]; 0 where no source view sees the pixel) and ``texture``
    (the reference's intensity standard deviation in the window)."""

    depth: np.ndarray
    score: np.ndarray
    texture: np.ndarray


def box(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over ``window`` × ``window`` boxes (reflected at the border), ``[H, W]`` float32."""
    return cv2.boxFilter(x, -1, (window, window), borderType=cv2.BORDER_REFLECT)


class _Reference:
    """The reference image's window statistics (mean, variance) for NCC."""

    def __init__(self, image: np.ndarray, window: int, eps: float) -> None:
        self.image, self.window, self.eps = image, window, eps
        self.mean = box(image, window)
        self.var = np.maximum(box(image * image, window) - self.mean * self.mean, 0) + np.float32(eps)
        self.inv_std = (1 / np.sqrt(self.var)).astype(np.float32)

    def ncc(self, warped: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """NCC ``[H, W]`` of every window of the reference with the same window of ``warped``; 0 where the
        centre pixel is not ``valid`` (a float32 mask of 0 and 1). OpenCV's element-wise operations: one pass
        each, no temporaries kept."""
        w = self.window
        mean = box(warped, w)
        var = cv2.subtract(box(cv2.multiply(warped, warped), w), cv2.multiply(mean, mean))
        var = cv2.add(cv2.max(var, 0.0), self.eps)
        cov = cv2.subtract(box(cv2.multiply(self.image, warped), w), cv2.multiply(self.mean, mean))
        return cv2.multiply(cv2.multiply(cv2.divide(cov, cv2.sqrt(var)), self.inv_std), valid)


class _Pair:
    """The map from reference pixels and depths to source pixels: ``[u·z, v·z, z]ᵀ = depth · a(u, v) + b`` with
    ``a = K_s R K_r⁻¹ [u, v, 1]ᵀ`` and ``b = K_s t`` (``R, t``: source-from-reference)."""

    def __init__(self, ref: View, src: View) -> None:
        H, W = ref.image.shape
        rel = src.cam_from_world @ np.linalg.inv(ref.cam_from_world)
        M = (src.K @ rel[:3, :3] @ np.linalg.inv(ref.K)).astype(np.float32)
        self.b = (src.K @ rel[:3, 3]).astype(np.float32)
        u, v = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
        self.a = [M[r, 0] * u + M[r, 1] * v + M[r, 2] for r in range(3)]
        self.src = src.image
        self.limit = (np.float32(src.image.shape[1] - 1), np.float32(src.image.shape[0] - 1))

    def warp(self, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The source image seen through ``depth`` ``[H, W]``: warped intensities and where the pixel lands
        inside the source image, in front of it (float32 0/1)."""
        z = depth * self.a[2]
        z += self.b[2]
        front = z > 1e-6
        inv = np.float32(1) / np.where(front, z, np.float32(1))
        u = depth * self.a[0]
        u += self.b[0]
        u *= inv
        v = depth * self.a[1]
        v += self.b[1]
        v *= inv
        valid = front & (u >= 0) & (v >= 0) & (u <= self.limit[0]) & (v <= self.limit[1])
        warped = cv2.remap(self.src, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return warped, valid.astype(np.float32)


def _aggregate(scores: list[np.ndarray], best_k: int) -> np.ndarray:
    """Per pixel, the mean of the ``best_k`` highest of the source views' NCCs ``[H, W]`` each (kept sorted
    by insertion, elementwise: ``k`` maxima and minima per view, far cheaper than sorting the stack)."""
    k = min(best_k, len(scores))
    top = [scores[0].copy()] + [np.full_like(scores[0], -np.inf) for _ in range(k - 1)]
    for x in scores[1:]:
        x = x.copy()
        for slot in top:  # insert x: each slot keeps the larger, passes the smaller on
            larger = np.maximum(slot, x)
            np.minimum(slot, x, out=x)
            slot[...] = larger
    total = top[0]
    for slot in top[1:]:
        total += slot
    return total / np.float32(k)


def _sweep(ref: View, sources: Sequence[View], hypotheses, options: StereoOptions
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate every hypothesis (an iterable of depth maps ``[H, W]``): the index of the best per pixel, the
    aggregated NCC volume ``[n, H, W]`` and the reference statistics' texture ``[H, W]``."""
    reference = _Reference(ref.image, options.window, options.texture_eps)
    pairs = [_Pair(ref, s) for s in sources]
    volume = []
    for depth in hypotheses:
        volume.append(_aggregate([reference.ncc(*pair.warp(depth)) for pair in pairs], options.best_k))
    volume = np.stack(volume)
    texture = np.sqrt(np.maximum(reference.var - np.float32(options.texture_eps), 0))
    return volume.argmax(0), volume, texture


def _subsample(volume: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-step offset (in steps, within ±½) of the winner by a parabola through it and its neighbours, and the
    winner's score."""
    n = volume.shape[0]
    take = lambda i: np.take_along_axis(volume, np.clip(i, 0, n - 1)[None], 0)[0]  # noqa: E731
    c0, cm, cp = take(best), take(best - 1), take(best + 1)
    curvature = cm - 2 * c0 + cp
    inner = (best > 0) & (best < n - 1) & (curvature < 0)
    offset = np.where(inner, 0.5 * (cm - cp) / np.where(inner, curvature, -1), 0)
    return np.clip(offset, -0.5, 0.5).astype(np.float32), c0


def _upsample_log(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``depth`` ``[h, w]`` → ``shape`` (bilinear in log-depth, pixel centres aligned)."""
    H, W = shape
    return np.exp(cv2.resize(np.log(depth), (W, H), interpolation=cv2.INTER_LINEAR)).astype(np.float32)


def _best_of(candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel, the candidate ``(log_depth, log_step, score)`` of the highest score."""
    log_depth, log_step, score = candidates[0]
    for other_depth, other_step, other_score in candidates[1:]:
        better = other_score > score
        log_depth = np.where(better, other_depth, log_depth)
        log_step = np.where(better, other_step, log_step)
        score = np.where(better, other_score, score)
    return log_depth, log_step, score


def match_view(ref: View, sources: Sequence[View], guide: Optional[np.ndarray], depth_range: tuple[float, float],
               options: StereoOptions = StereoOptions()) -> Match:
    """Depth of ``ref`` from ``sources`` (see the module docstring). ``guide`` ``[H, W]``: the prior (positive;
    NaN where unknown, replaced by the median) or ``None``; ``depth_range`` ``(near, far)`` of the plane sweep
    (``options.sweep_planes`` of 0: no plane sweep, which needs a ``guide``)."""
    if guide is None and options.sweep_planes == 0:
        raise ValueError("match_view needs a guide or a plane sweep")
    pyramid = [(ref, list(sources))]
    for _ in range(options.levels - 1):
        if min(pyramid[-1][0].image.shape) < 16 * options.window:  # the coarsest level: at least 8 windows a side
            break
        r, s = pyramid[-1]
        pyramid.append((r.halved(), [v.halved() for v in s]))
    near, far = depth_range
    if not 0 < near < far:
        raise ValueError(f"depth_range must be 0 < near < far (got {depth_range})")
    far = min(far, MAX_DEPTH_RATIO * near)  # beyond: a sky at "infinity", whose depth no baseline resolves
    coarse_ref, coarse_src = pyramid[-1]
    h, w = coarse_ref.image.shape
    candidates = []
    if options.sweep_planes:
        inverse = np.linspace(1 / far, 1 / near, options.sweep_planes, dtype=np.float32)
        best, volume, texture = _sweep(coarse_ref, coarse_src, (np.full((h, w), 1 / q, np.float32) for q in inverse),
                                       options)
        offset, score = _subsample(volume, best)
        step = np.float32(inverse[1] - inverse[0])
        inv = inverse[best] + offset * step
        candidates.append((-np.log(inv), np.minimum(step / inv, MAX_LOG_STEP), score))  # a plane step in log-depth
    if guide is not None:
        guide = np.asarray(guide, np.float32)
        known = np.isfinite(guide) & (guide > 0)
        guide = np.where(known, guide, np.median(guide[known]) if known.any() else math.sqrt(near * far))
        base = cv2.resize(np.log(guide), (w, h), interpolation=cv2.INTER_AREA)
        span = math.log1p(options.prior_range)
        steps = np.linspace(-span, span, options.prior_steps, dtype=np.float32)
        best, volume, texture = _sweep(coarse_ref, coarse_src, (np.exp(base + s) for s in steps), options)
        offset, score = _subsample(volume, best)
        step = np.float32(steps[1] - steps[0])
        candidates.append((base + steps[best] + offset * step, np.full((h, w), step, np.float32), score))
    log_depth, log_step, score = _best_of(candidates)
    for level in range(len(pyramid) - 2, -1, -1):
        lref, lsrc = pyramid[level]
        shape = lref.image.shape
        base = np.log(_upsample_log(np.exp(log_depth), shape))
        log_step = cv2.resize(log_step, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        # propagation: each pixel also tries the nearest and the farthest depth around it (a foreground object
        # that the coarser level's windows blurred into its background, or the reverse, gets its own back)
        if level > 0:  # not at the finest level: measured no better there, and a third of its cost
            kernel = np.ones((2 * PROPAGATION_RADIUS + 1,) * 2, np.uint8)
            near, far = cv2.erode(base, kernel), cv2.dilate(base, kernel)
            best, volume, _ = _sweep(lref, lsrc, (np.exp(x) for x in (base, near, far)), options)
            base = np.choose(best, [base, near, far]).astype(np.float32)
        half = options.refine_steps // 2
        unit = log_step / half  # the finer grid spans ±1 coarser step
        ks = np.arange(-half, half + 1, dtype=np.float32)
        best, volume, texture = _sweep(lref, lsrc, (np.exp(base + k * unit) for k in ks), options)
        offset, score = _subsample(volume, best)
        log_depth = base + (ks[best] + offset) * unit
        log_step = unit
    depth = np.exp(log_depth).astype(np.float32)
    return Match(depth, score.astype(np.float32), texture.astype(np.float32))
