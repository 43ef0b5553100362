"""Camera paths for the synthetic engine (world frame z up). Each returns camera-from-world ``[N, 3, 4]``.

``overlap`` (0..1) sets how much consecutive views share, approximately as a fraction of the field of view:
the viewing direction changes by about ``(1 - overlap) · fov`` between neighbours (orbit, walk) or lies in a
cone of that half-angle around the common target direction (random).
"""

from __future__ import annotations

import numpy as np

from mum.geometry import look_at

UP = np.array([0.0, 0.0, 1.0])


def orbit(center: np.ndarray, radius: float, height: float, n: int, fov: float, overlap: float,
          rng: np.random.Generator, inward: bool = True, jitter: float = 0.05) -> np.ndarray:
    """Cameras on a horizontal circle of ``radius`` around ``center`` at ``height`` above it, looking at the
    centre (``inward``) or away from it (a panning sweep from inside a room). Consecutive views are
    ``(1 - overlap) · fov`` apart in azimuth (at most a full turn over the sequence), starting at a random
    azimuth, in a random direction; positions and targets are jittered by ``jitter · radius``."""
    step = (1.0 - overlap) * fov * (1.0 if not inward else 1.5)
    step = min(step, 2 * np.pi / max(n, 1))
    start = rng.uniform(0, 2 * np.pi)
    sign = rng.choice([-1.0, 1.0])
    out = []
    for k in range(n):
        a = start + sign * k * step
        d = np.array([np.cos(a), np.sin(a), 0.0])
        eye = center + d * radius + [0, 0, height] + rng.normal(0, jitter * radius, 3)
        if inward:
            target = center + rng.normal(0, jitter * radius, 3)
        else:
            target = eye + d * radius + [0, 0, rng.normal(0, 0.1) * radius]
        out.append(look_at(eye, target, UP, roll=rng.normal(0, 0.02)))
    return np.stack(out)


WALK_TURNS = ("on_the_spot", "arc")


def walk(start: np.ndarray, heading: float, n: int, step: float, fov: float, overlap: float,
         rng: np.random.Generator, bounds: np.ndarray | None = None, pitch: float = 0.0,
         turn: str = "on_the_spot") -> np.ndarray:
    """Forward walk-through: ``n`` positions ``step`` apart (scaled by ``1 - overlap``) along a path that turns
    smoothly (heading changes by ≲ ``(1 - overlap) · fov / 2`` per view), looking ahead with slight pitch and
    roll noise, within ``bounds = [[xmin, ymin], [xmax, ymax]]``. At the bounds the walker turns around
    (``turn``):

    * ``"on_the_spot"``: where the next step would leave them, the heading turns by 108–180° between two views
      (the training and held-out scenes' walks; as a video, a cut);
    * ``"arc"``: as someone filming turns: when the point one turning radius ahead leaves them, the heading
      turns towards the middle by a further ``(1 - overlap) · fov`` per view (the tightest arc); the walker
      stands while turning only where even the next step would leave them, so consecutive views always share
      most of their content, as a video's frames do."""
    if turn not in WALK_TURNS:
        raise ValueError(f"turn must be one of {WALK_TURNS}, not {turn!r}")
    pos = np.asarray(start, np.float64).copy()
    turn_rate = rng.normal(0, 0.5) * (1 - overlap) * fov * 0.5
    stride = step * (1 - overlap) * 2
    max_turn = (1 - overlap) * fov
    radius = stride / max(max_turn, 1e-9)  # of the tightest arc
    out = []
    for _ in range(n):
        d = np.array([np.cos(heading), np.sin(heading), np.tan(pitch + rng.normal(0, 0.03))])
        out.append(look_at(pos, pos + d, UP, roll=rng.normal(0, 0.02)))
        heading += turn_rate + rng.normal(0, 0.05) * (1 - overlap)
        if bounds is not None and turn == "arc":
            ahead = pos[:2] + radius * np.array([np.cos(heading), np.sin(heading)])
            if not _inside(ahead, bounds):
                to_middle = bounds.mean(axis=0) - pos[:2]
                side = 1.0 if np.cos(heading) * to_middle[1] - np.sin(heading) * to_middle[0] >= 0 else -1.0
                heading += side * max_turn
        move = stride * np.array([np.cos(heading), np.sin(heading), 0.0])
        if bounds is None or _inside(pos[:2] + move[:2], bounds):
            pos = pos + move
        elif turn == "on_the_spot":
            heading += np.pi * rng.uniform(0.6, 1.0)
    return np.stack(out)


def _inside(xy: np.ndarray, bounds: np.ndarray) -> bool:
    return bool(np.all(xy >= bounds[0]) and np.all(xy <= bounds[1]))


def random_look_at(target: np.ndarray, target_radius: float, distance: tuple[float, float],
                   elevation: tuple[float, float], n: int, fov: float, overlap: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Cameras around ``target`` at ``distance`` and ``elevation`` (radians) ranges, their directions from the
    target within ``±(1 - overlap) · 90°`` in azimuth and half that in elevation around a random main
    direction, each looking at a random point within ``target_radius`` of the target."""
    main_az, main_el = rng.uniform(0, 2 * np.pi), rng.uniform(*elevation)
    spread = (1 - overlap) * np.pi / 2 + 0.05
    out = []
    for _ in range(n):
        az = main_az + rng.uniform(-spread, spread)
        el = np.clip(main_el + rng.uniform(-spread, spread) / 2, *elevation)
        dist = rng.uniform(*distance)
        d = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        eye = target + d * dist
        aim = target + rng.normal(0, target_radius / 2, 3)
        out.append(look_at(eye, aim, UP, roll=rng.normal(0, 0.03)))
    return np.stack(out)
