"""A contact sheet of scenes (RGB row over a colour-mapped depth row per scene) to judge realism at a glance."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from mum.data.scene import Scene


def depth_to_color(depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``[H, W]`` depth → ``uint8 [H, W, 3]`` RGB (turbo on inverse depth, robust range; black = invalid)."""
    valid = (depth > 0) if mask is None else (mask & (depth > 0))
    out = np.zeros(depth.shape + (3,), np.uint8)
    if valid.any():
        inv = np.zeros_like(depth, dtype=np.float32)
        inv[valid] = 1.0 / depth[valid]
        lo, hi = np.percentile(inv[valid], [2, 98])
        x = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1)
        colored = cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
        out[valid] = colored[valid]
    return out


def contact_sheet(scenes: Sequence[Scene], views: int = 4, tile: int = 160, gap: int = 4) -> np.ndarray:
    """``uint8 [rows, cols, 3]`` RGB: for each scene, ``views`` RGB tiles over their depth tiles."""
    rows = []
    for scene in scenes:
        idx = np.linspace(0, scene.num_views - 1, min(views, scene.num_views)).round().astype(int)
        rgb, dep = [], []
        for i in idx:
            img = scene.image(int(i))
            h, w = img.shape[:2]
            size = (tile, max(1, round(tile * h / w)))
            rgb.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
            d = scene.depths[i] if scene.depths is not None else np.zeros((h, w), np.float32)
            m = scene.masks[i] if scene.masks is not None else None
            dep.append(cv2.resize(depth_to_color(d, m), size, interpolation=cv2.INTER_NEAREST))
        for strip in (rgb, dep):
            row = np.full((strip[0].shape[0], len(strip) * (tile + gap) - gap, 3), 255, np.uint8)
            for k, t in enumerate(strip):
                row[: t.shape[0], k * (tile + gap) : k * (tile + gap) + tile] = t
            rows.append(row)
        rows.append(np.full((gap * 3, rows[-1].shape[1], 3), 255, np.uint8))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows[:-1]])
