"""Dense geometry consistent with the cameras: network depth fitted to SfM points, upsampled, cross-checked.

* :func:`fit_depth` — per view, a robust scale (and a shift where it clearly helps) that maps the network's
  depth onto the depths of the SfM points that view observes;
* :func:`upsample_depth` — a finer grid (``factor``× the network's) by bilinear interpolation of log-depth
  followed by a guided filter on the image at that size, so that depth edges follow image edges;
* :func:`depth_agreement` — each pixel's depth projected into its most-overlapping views and compared with
  their depth there: a per-pixel count of views that agree (the consistency filter) and the median relative
  disagreement over all overlapping pixels (the figure reported to users).

Depth is camera z; intrinsics ``[S, 3, 3]`` are in pixels of the depth grid (pixel centres at integers);
cameras are OpenCV camera-from-world ``[S, 4, 4]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS_FOR_FIT = 12  # fewer SfM points in a view: it takes the scene's median scale


@dataclass
class DepthFit:
    """``depth_fitted = scale · depth + shift``; ``points`` used, median relative residual before/after."""

    scale: float
    shift: float
    points: int
    residual: float


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Values of ``image`` ``[h, w]`` at pixel-centre coordinates ``uv`` ``[n, 2]`` (NaN outside)."""
    h, w = image.shape
    u, v = uv[:, 0], uv[:, 1]
    inside = (u >= 0) & (v >= 0) & (u <= w - 1) & (v <= h - 1)
    out = np.full(len(uv), np.nan)
    u, v = u[inside], v[inside]
    u0, v0 = np.minimum(np.floor(u).astype(int), w - 2 if w > 1 else 0), np.minimum(np.floor(v).astype(int), h - 2 if h > 1 else 0)
    du, dv = u - u0, v - v0
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    out[inside] = ((1 - du) * (1 - dv) * image[v0, u0] + du * (1 - dv) * image[v0, u1]
                   + (1 - du) * dv * image[v1, u0] + du * dv * image[v1, u1])
    return out


def fit_depth(depth: np.ndarray, uv: np.ndarray, z: np.ndarray) -> DepthFit | None:
    """Fit ``depth`` ``[h, w]`` (network, arbitrary scale) to SfM depths ``z`` ``[n]`` observed at ``uv``
    ``[n, 2]`` (depth-grid pixels). Scale = median of ratios; a shift is kept only when an iteratively
    reweighted (Cauchy) affine fit lowers the median relative residual by more than 10 % and keeps every
    depth positive. ``None`` when fewer than ``MIN_POINTS_FOR_FIT`` points fall on valid depth."""
    d = sample_bilinear(depth, uv)
    ok = np.isfinite(d) & (d > 0) & np.isfinite(z) & (z > 0)
    if ok.sum() < MIN_POINTS_FOR_FIT:
        return None
    d, z = d[ok], z[ok]
    scale = float(np.median(z / d))
    residual = float(np.median(np.abs(scale * d - z) / z))
    a, b = scale, 0.0
    for _ in range(10):  # IRLS on relative residuals
        r = (a * d + b - z) / z
        c = max(1.4826 * float(np.median(np.abs(r))), 1e-6)
        wgt = 1.0 / (1.0 + (r / (2.385 * c)) ** 2) / z**2
        A = np.stack([d, np.ones_like(d)], 1) * np.sqrt(wgt)[:, None]
        a, b = np.linalg.lstsq(A, z * np.sqrt(wgt), rcond=None)[0]
    affine_residual = float(np.median(np.abs(a * d + b - z) / z))
    if a > 0 and affine_residual < 0.9 * residual and a * float(np.nanmin(depth)) + b > 0:
        return DepthFit(float(a), float(b), int(ok.sum()), affine_residual)
    return DepthFit(scale, 0.0, int(ok.sum()), residual)


def _hat_weights(x: np.ndarray, nodes: int, length: int) -> np.ndarray:
    """``[n, nodes]`` linear-interpolation weights of coordinates ``x`` (pixel centres in ``[0, length-1]``) on
    ``nodes`` evenly spaced nodes spanning the same range."""
    k, f = _hat_nodes(x, nodes, length)
    W = np.zeros((len(x), nodes))
    np.add.at(W, (np.arange(len(x)), k), 1 - f)
    np.add.at(W, (np.arange(len(x)), np.minimum(k + 1, nodes - 1)), f)
    return W


def _hat_nodes(x: np.ndarray, nodes: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The lower node ``k`` ``[n]`` of each coordinate ``x`` on ``nodes`` evenly spaced nodes over
    ``[0, length-1]`` and its weight ``f`` on node ``k + 1`` (``1 - f`` on ``k``; ``f`` is 0 with one node)."""
    if nodes == 1:
        return np.zeros(len(x), int), np.zeros(len(x))
    t = np.clip(x / max(length - 1, 1), 0, 1) * (nodes - 1)
    k = np.minimum(np.floor(t).astype(int), nodes - 2)
    return k, t - k


def _membrane(gh: int, gw: int) -> np.ndarray:
    """``LᵀL`` ``[gh·gw, gh·gw]`` of the membrane term on a ``gh`` × ``gw`` node grid: one row of ``L`` per
    pair of horizontally or vertically neighbouring nodes, ``+1`` on one, ``−1`` on the other."""
    index = np.arange(gh * gw).reshape(gh, gw)
    a = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    b = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    LtL = np.zeros((gh * gw, gh * gw))
    np.add.at(LtL, (a, a), 1)
    np.add.at(LtL, (b, b), 1)
    np.add.at(LtL, (a, b), -1)
    np.add.at(LtL, (b, a), -1)
    return LtL


def fit_correction_field(depth: np.ndarray, uv: np.ndarray, z: np.ndarray, points_per_node: int = 10,
                         max_nodes: int = 16, smoothness: float = 0.2) -> np.ndarray | None:
    """A smooth multiplicative correction ``[h, w]`` so that ``depth · correction`` meets the SfM depths ``z``
    ``[n]`` at ``uv`` ``[n, 2]``: log-depth offsets on a coarse bilinear grid (about ``points_per_node``
    points per node, at most ``max_nodes`` a side), membrane-regularised (``smoothness`` relative to the data
    term) and fitted by iteratively reweighted least squares (Cauchy). It absorbs the network depth's
    low-frequency shape error (a tilted or bent floor), which no single scale and shift can. ``None`` with
    fewer than ``MIN_POINTS_FOR_FIT`` usable points. Its solves are at most 256 × 256: one BLAS thread does one in
    ~2 ms, two (OpenBLAS's pthreads beside torch's OpenMP ones) took 10–90 ms on the shared 2-core machine, so
    callers that fit many views hold ``threadpool_limits(1, user_api="blas")`` around the loop (once, from their
    own thread: see :mod:`app.engine.view_threads`)."""
    h, w = depth.shape
    d = sample_bilinear(depth, uv)
    ok = np.isfinite(d) & (d > 0) & np.isfinite(z) & (z > 0)
    n = int(ok.sum())
    if n < MIN_POINTS_FOR_FIT:
        return None
    y = np.log(z[ok]) - np.log(d[ok])
    total = max(1.0, n / points_per_node)
    gw = int(np.clip(round(np.sqrt(total * w / h)), 1, max_nodes))
    gh = int(np.clip(round(total / gw), 1, max_nodes))
    nodes = gh * gw
    # the design matrix A [n, nodes] has 4 entries a row (the bilinear weights of the 4 nodes around a point):
    # kept as those entries, A·x and the normal equations AᵀWA, AᵀWy are gathers and bincounts, O(n) each
    kr, fr = _hat_nodes(uv[ok, 1], gh, h)
    kc, fc = _hat_nodes(uv[ok, 0], gw, w)
    kr1, kc1 = np.minimum(kr + 1, gh - 1), np.minimum(kc + 1, gw - 1)
    index = np.stack([kr * gw + kc, kr * gw + kc1, kr1 * gw + kc, kr1 * gw + kc1], 1)  # [n, 4]
    value = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc], 1)  # [n, 4]
    pairs = (index[:, :, None] * nodes + index[:, None, :]).reshape(n, 16)
    products = (value[:, :, None] * value[:, None, :]).reshape(n, 16)
    lam = smoothness * n / nodes
    regulariser = lam * _membrane(gh, gw) + 1e-6 * np.eye(nodes)
    coef = np.full(nodes, np.median(y))
    for _ in range(8):
        r = np.sum(value * coef[index], 1) - y
        c = max(1.4826 * float(np.median(np.abs(r))), 1e-4)
        wgt = 1.0 / (1.0 + (r / (2.385 * c)) ** 2)
        H = np.bincount(pairs.ravel(), (products * wgt[:, None]).ravel(), nodes * nodes).reshape(nodes, nodes)
        rhs = np.bincount(index.ravel(), (value * (wgt * y)[:, None]).ravel(), nodes)
        coef = np.linalg.solve(H + regulariser, rhs + 1e-6 * np.median(y))
    field = _hat_weights(np.arange(h, dtype=float), gh, h) @ coef.reshape(gh, gw) @ _hat_weights(np.arange(w, dtype=float), gw, w).T
    return np.exp(field)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide): ``source`` ``[h, w]`` smoothed by boxes of ``2·radius + 1`` while
    following the edges of ``guide`` ``[h, w]`` in [0, 1] (``eps``: edge threshold, in guide variance)."""
    import cv2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(source)
    a = (box(guide * source) - mean_i * mean_p) / (box(guide * guide) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def upsample_depth(depth: np.ndarray, guide: np.ndarray, factor: int) -> np.ndarray:
    """``depth`` ``[h, w]`` → ``[factor·h, factor·w]`` guided by ``guide`` ``[factor·h, factor·w, 3]`` uint8 (the
    view at that size): bilinear log-depth, then a guided filter so that depth edges follow image edges; the
    fine pixels of an unknown (NaN or non-positive) pixel stay NaN. Pixel centres stay aligned
    (``u' = (u + ½)·factor − ½``)."""
    import cv2

    if factor == 1:
        return depth.astype(np.float32)
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    filled = np.where(valid, depth, np.median(depth[valid]) if valid.any() else 1.0).astype(np.float32)
    log_depth = cv2.resize(np.log(filled), (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    gray = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    fine = np.exp(guided_filter(gray, log_depth, 2 * factor, 1e-3)).astype(np.float32)
    fine[np.repeat(np.repeat(~valid, factor, 0), factor, 1)] = np.nan  # unknown stays unknown
    return fine


def _unproject(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """World points ``[n, 3]`` (float32) of every ``step``-th pixel and their ``(row, column)`` ``[n, 2]``."""
    h, w = depth.shape
    v, u = np.mgrid[0:h:step, 0:w:step]
    v, u = v.reshape(-1), u.reshape(-1)
    d = depth[v, u].astype(np.float32)
    R, t = cam_from_world[:3, :3].astype(np.float32), cam_from_world[:3, 3].astype(np.float32)
    # X = Rᵀ (d·K⁻¹[u v 1] − t), as one small matmul
    cam = np.empty((d.size, 3), np.float32)
    cam[:, 0] = (u - np.float32(K[0, 2])) * np.float32(1 / K[0, 0]) * d
    cam[:, 1] = (v - np.float32(K[1, 2])) * np.float32(1 / K[1, 1]) * d
    cam[:, 2] = d
    cam -= t
    return cam @ R, np.stack([v, u], 1)


def _project(points: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, shape: tuple[int, int]):
    """Camera depth ``z``, nearest pixel ``(u, v)`` and an in-front-and-inside mask of world ``points``."""
    x = points @ cam_from_world[:3, :3].T.astype(np.float32) + cam_from_world[:3, 3].astype(np.float32)
    z = x[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.rint(np.float32(K[0, 0]) * x[:, 0] / z + np.float32(K[0, 2]))
        v = np.rint(np.float32(K[1, 1]) * x[:, 1] / z + np.float32(K[1, 2]))
    h, w = shape
    inside = (z > 0) & (u >= 0) & (v >= 0) & (u <= w - 1) & (v <= h - 1)
    return z, u, v, inside


def overlap_neighbours(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, count: int,
                       min_overlap: float = 0.1) -> list[list[int]]:
    """For each view, up to ``count`` other views that see most of it (fraction of a coarse pixel grid that
    projects inside them, in front), best first, each seeing at least ``min_overlap``."""
    S, h, w = depth.shape
    step = max(1, max(h, w) // 24)
    frac = np.zeros((S, S))
    for i in range(S):
        pts, _ = _unproject(depth[i], K[i], cam_from_world[i], step)
        pts = pts[np.isfinite(pts).all(1)]
        if len(pts) == 0:
            continue
        for j in range(S):
            if j != i:
                frac[i, j] = _project(pts, K[j], cam_from_world[j], (h, w))[3].mean()
    out = []
    for i in range(S):
        order = [int(j) for j in np.argsort(-frac[i]) if j != i and frac[i, j] >= min_overlap]
        out.append(order[:count])
    return out


def warp_depth(depth_j: np.ndarray, K_j: np.ndarray, cam_j: np.ndarray, K_i: np.ndarray, cam_i: np.ndarray,
               points_j: np.ndarray | None = None) -> np.ndarray:
    """View ``j``'s depth ``[h, w]`` seen from view ``i``: its points projected into ``i`` (nearest pixel,
    the nearest point where several land: a z-buffer); NaN where none lands. ``points_j``: ``j``'s finite world
    points if already computed."""
    h, w = depth_j.shape
    if points_j is None:
        points_j = _unproject(depth_j, K_j, cam_j, 1)[0]
        points_j = points_j[np.isfinite(points_j).all(1)]
    z, u, v, inside = _project(points_j, K_i, cam_i, (h, w))
    flat = v[inside].astype(np.int64) * w + u[inside].astype(np.int64)
    order = np.argsort(-z[inside], kind="stable")  # far to near: the nearest is written last and stays
    out = np.full(h * w, np.nan, np.float32)
    out[flat[order]] = z[inside][order]
    return out.reshape(h, w)


def fuse_depths(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, neighbours: list[list[int]],
                max_relative_offset: float = 0.3) -> np.ndarray:
    """Multi-view consensus: each pixel's depth becomes the median of its own and its neighbours' depths warped
    into its view (:func:`warp_depth`), counting only those within ``max_relative_offset`` of its own (a
    neighbour that sees another surface there, through a disocclusion, is ignored). Independent errors of the
    per-view network depth average out; ``[S, h, w]`` in, ``[S, h, w]`` out."""
    fused = depth.copy()
    points = []
    for j in range(len(depth)):
        pts = _unproject(depth[j], K[j], cam_from_world[j], 1)[0]
        points.append(pts[np.isfinite(pts).all(1)])
    for i in range(len(depth)):
        if not neighbours[i]:
            continue
        own = depth[i]
        candidates = [own]
        for j in neighbours[i]:
            warped = warp_depth(depth[j], K[j], cam_from_world[j], K[i], cam_from_world[i], points[j])
            warped[~(np.abs(warped - own) <= max_relative_offset * own)] = np.nan
            candidates.append(warped)
        fused[i] = nanmedian_first_axis(np.stack(candidates))
    return fused


def nanmedian_first_axis(stack: np.ndarray) -> np.ndarray:
    """``np.nanmedian(stack, axis=0)`` for a short first axis, ~10× faster (sort puts NaN last); NaN where
    every value is NaN."""
    ordered = np.sort(stack, axis=0)
    n = np.isfinite(ordered).sum(0)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(ordered, np.maximum(n // 2, 0)[None], 0)[0]
    out = (lo + hi) / 2
    out[n == 0] = np.nan
    return out


@dataclass
class Agreement:
    """``agreeing`` ``[S, h, w]``: how many neighbour views confirm each pixel's depth (within ``tolerance``);
    ``median_disagreement``: median relative depth difference over all pixels that project into a
    neighbour (NaN when no view overlaps another); ``pairs``: the (view, neighbour) pairs compared."""

    agreeing: np.ndarray
    median_disagreement: float
    pairs: int


def depth_agreement(depth: np.ndarray, K: np.ndarray, cam_from_world: np.ndarray, neighbours: list[list[int]],
                    tolerance: float = 0.05, mask: np.ndarray | None = None, step: int = 1) -> Agreement:
    """Project every pixel of every view into its ``neighbours`` and compare with their depth there
    (nearest pixel): relative difference ``|z_projected − d_neighbour| / d_neighbour``. ``mask`` ``[S, h, w]``:
    compare only pixels inside it, with neighbour pixels inside it (e.g. the pixels a point cloud keeps).
    ``step``: compare every ``step``-th pixel of each row and column (a cheaper figure; ``agreeing`` is then
    filled for those pixels only)."""
    S, h, w = depth.shape
    agreeing = np.zeros((S, h, w), np.int16)
    differences = []
    pairs = 0
    masked = np.where(mask, depth, np.nan) if mask is not None else depth
    for i in range(S):
        pts, pix = _unproject(masked[i], K[i], cam_from_world[i], step)
        finite = np.isfinite(pts).all(1)
        for j in neighbours[i]:
            z, u, v, inside = _project(pts, K[j], cam_from_world[j], (h, w))
            inside &= finite
            dj = np.full(len(z), np.nan)
            dj[inside] = masked[j, v[inside].astype(int), u[inside].astype(int)]
            valid = inside & np.isfinite(dj) & (dj > 0)
            if not valid.any():
                continue
            rel = np.abs(z[valid] - dj[valid]) / dj[valid]
            differences.append(rel[:: max(1, rel.size // 20000)])
            ok = np.zeros(len(z), bool)
            ok[valid] = rel < tolerance
            agreeing[i, pix[ok, 0], pix[ok, 1]] += 1
            pairs += 1
    median = float(np.median(np.concatenate(differences))) if differences else float("nan")
    return Agreement(agreeing, median, pairs)
