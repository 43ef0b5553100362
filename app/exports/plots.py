"""Colour-mapped images of dense per-view maps (depth, confidence) for display."""

from __future__ import annotations

import numpy as np

from app.engine.runtime import signals_deferred


def colorize(
    values: np.ndarray,
    cmap: str = "turbo",
    lo: float | None = None,
    hi: float | None = None,
    invert: bool = False,
) -> np.ndarray:
    """``[H, W]`` float map → ``[H, W, 3]`` uint8 RGB. The range defaults to the 2nd–98th percentile of the
    finite values; non-finite pixels are black. ``invert`` flips the ramp (near = warm for depth)."""
    with signals_deferred():  # matplotlib swallows an interrupt while importing
        import matplotlib

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros((*values.shape, 3), np.uint8)
    lo = float(np.percentile(values[finite], 2)) if lo is None else lo
    hi = float(np.percentile(values[finite], 98)) if hi is None else hi
    t = np.clip((np.where(finite, values, lo) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    if invert:
        t = 1.0 - t
    rgb = (matplotlib.colormaps[cmap](t)[..., :3] * 255 + 0.5).astype(np.uint8)
    rgb[~finite] = 0
    return rgb


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth as a turbo image, near = red, far = blue."""
    return colorize(depth, "turbo", invert=True)


def confidence_image(conf: np.ndarray) -> np.ndarray:
    """Confidence (≥ 1) as a viridis image on a log scale, bright = confident."""
    return colorize(np.log(np.maximum(np.asarray(conf, np.float64), 1e-12)), "viridis")
