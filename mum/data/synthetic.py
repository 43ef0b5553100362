"""Synthetic multi-view scenes with exact ground truth (RGB, z-depth, validity mask, intrinsics and
camera-from-world extrinsics), deterministic from a seed.

Seed ranges (never overlap; the dataset layer maps sample indices into them):

- ``TRAIN_SEEDS = range(0, 1_000_000_000)``
- ``VAL_SEEDS   = range(1_000_000_000, 1_000_100_000)``
- ``TEST_SEEDS  = range(1_100_000_000, 1_100_100_000)`` (``mum-make-testset`` writes these)

A seed fixes the world (geometry, textures, lights) through its own random stream, and the cameras through
another, so the same seed at another resolution or view count shows the same world. Photographic textures
come from the repository's ``demo/*/images`` (plus ``$MUM_TEXTURE_DIRS`` or ``photo_dirs``); changing the set
of photos changes the scenes.

Speed (``python benchmarks/data.py``, 8-view scenes, the project's 2-core CPU, 2026-12-02): at 224×224 one
single-threaded process makes 22 views of full training samples per CPU-second and a 2-worker ``DataLoader``
delivers ≈ 38 views/s; at 512×512, 5.3 and 9.1. CPU time per 224×224 scene ≈ 0.36 s: building the world
(meshes, procedural textures) 0.08 s, planning cameras 0.01 s, rendering 0.25 s (of which Embree ray casting
for camera and shadow rays ≈ 0.11 s), sample assembly 0.02 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mum.data import cameras as paths
from mum.geometry import intrinsics_from_fov, pixel_rays
from mum.data.render import World, render_views
from mum.data.scene import Scene
from mum.data.textures import PhotoBank
from mum.data.worlds import BUILDERS, KINDS, camera_is_free

TRAIN_SEEDS = range(0, 1_000_000_000)
VAL_SEEDS = range(1_000_000_000, 1_000_100_000)
TEST_SEEDS = range(1_100_000_000, 1_100_100_000)
SPLITS = {"train": TRAIN_SEEDS, "val": VAL_SEEDS, "test": TEST_SEEDS}
PATHS = {"room": ("walk", "random", "orbit"), "object": ("orbit", "random"), "terrain": ("walk", "orbit", "random")}


@dataclass
class SyntheticConfig:
    """What the engine may generate. Ranges are sampled uniformly per scene.

    ``kinds``/``camera_paths``: allowed scene kinds and paths (a path a kind does not support is skipped);
    ``fov_deg``: horizontal field of view; ``overlap``: see :mod:`mum.data.cameras`; ``focal_jitter``: relative
    per-view change of focal length (0 = one camera for the whole sequence); ``principal_jitter``: principal
    point offset as a fraction of the image size; ``photo_fraction``: share of textures cut from photographs;
    ``walk_turns``: how a walk turns around at the bounds of its room or terrain (:func:`mum.data.cameras.walk`:
    ``"on_the_spot"`` between two views, the training and held-out scenes' walks; ``"arc"``, as a filmed walk
    turns, for video sequences).
    """

    kinds: tuple[str, ...] = KINDS
    kind_weights: tuple[float, ...] | None = None
    camera_paths: tuple[str, ...] = ("orbit", "walk", "random")
    fov_deg: tuple[float, float] = (40.0, 80.0)
    overlap: tuple[float, float] = (0.5, 0.9)
    focal_jitter: float = 0.0
    principal_jitter: float = 0.0
    photo_fraction: float = 0.5
    photo_dirs: tuple[str, ...] | None = None
    nthreads: int = 0
    probe_tries: int = 8
    walk_turns: str = "on_the_spot"

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in BUILDERS]
        if bad:
            raise ValueError(f"unknown scene kind(s) {bad}; choose from {list(BUILDERS)}")
        if self.walk_turns not in paths.WALK_TURNS:
            raise ValueError(f"walk_turns must be one of {paths.WALK_TURNS}, not {self.walk_turns!r}")


@dataclass
class _Plan:
    kind: str
    path: str
    fov: float
    overlap: float
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    info: dict = field(default_factory=dict)


def seed_for(split: str, index: int) -> int:
    """The seed of sample ``index`` of ``split`` ("train", "val", "test")."""
    seeds = SPLITS[split]
    if not 0 <= index < len(seeds):
        raise IndexError(f"{split} has {len(seeds)} seeds; index {index} is out of range")
    return seeds[index]


def _draw_kind(rng: np.random.Generator, config: SyntheticConfig) -> str:
    weights = np.asarray(config.kind_weights or [1.0] * len(config.kinds), np.float64)
    return config.kinds[int(rng.choice(len(config.kinds), p=weights / weights.sum()))]


def scene_kind(seed: int, config: SyntheticConfig | None = None) -> str:
    """The kind of the world of ``seed`` (``room``, ``object``, ``terrain``), without building it."""
    return _draw_kind(np.random.default_rng([seed, 0]), config or SyntheticConfig())


def build_world(seed: int, config: SyntheticConfig | None = None) -> World:
    """The world of ``seed`` (geometry, textures, lights), independent of cameras and resolution."""
    config = config or SyntheticConfig()
    rng = np.random.default_rng([seed, 0])
    kind = _draw_kind(rng, config)
    photos = PhotoBank(config.photo_dirs) if config.photo_fraction > 0 else None
    return BUILDERS[kind](rng, photos, config.photo_fraction)


def _path_cameras(world: World, path: str, n: int, fov: float, overlap: float, rng: np.random.Generator,
                  walk_turns: str = "on_the_spot") -> np.ndarray:
    info, kind = world.info, world.info["kind"]
    if kind == "room":
        Lx, Ly, Hz = info["size"]
        fr = info["free_radius"]
        a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.5) * fr
        base = np.array([rr * np.cos(a), rr * np.sin(a), rng.uniform(1.1, min(1.8, Hz - 0.4))])
        if path == "walk":
            return paths.walk(base, rng.uniform(0, 2 * np.pi), n, 0.35, fov, overlap, rng,
                              bounds=np.array([[-fr, -fr], [fr, fr]]), pitch=rng.uniform(-0.3, 0.05), turn=walk_turns)
        if path == "orbit":
            return paths.orbit(base - [0, 0, base[2]], rng.uniform(0.1, 0.5) * fr, base[2], n, fov, overlap, rng, inward=False)
        # random: eyes spread around a base point, all looking at a common target (a solid or a wall point)
        if info["solids"] and rng.random() < 0.7:
            target = info["solids"][int(rng.integers(len(info["solids"])))][0].copy()
        else:
            target = np.array([rng.uniform(-Lx / 2, Lx / 2), rng.uniform(-Ly / 2, Ly / 2), rng.uniform(0.3, Hz - 0.3)])
        spread = fr * (1 - overlap) * 2 + 0.1
        out = []
        for _ in range(n):
            eye = base + np.concatenate([rng.uniform(-spread, spread, 2), rng.uniform(-0.3, 0.3, 1)])
            out.append(paths.look_at(eye, target + rng.normal(0, 0.2, 3), paths.UP, roll=rng.normal(0, 0.03)))
        return np.stack(out)
    if kind == "object":
        c = info["center"]
        grounded = info["grounded"]
        if path == "orbit":
            height = rng.uniform(0.3, 2.0) if grounded else rng.uniform(-1.5, 1.5)
            return paths.orbit(c, rng.uniform(2.2, 4.0), height, n, fov, overlap, rng)
        elev = (0.1, 0.9) if grounded else (-0.9, 0.9)
        return paths.random_look_at(c, 0.3, (2.2, 4.0), elev, n, fov, overlap, rng)
    # terrain
    L, gh = info["extent"], info["ground_height"]
    if path == "walk":
        x, y = rng.uniform(-0.15, 0.15, 2) * L
        start = np.array([x, y, float(gh(x, y)) + rng.uniform(1.5, 2.5)])
        return paths.walk(start, rng.uniform(0, 2 * np.pi), n, 2.0, fov, overlap, rng,
                          bounds=np.array([[-0.25 * L, -0.25 * L], [0.25 * L, 0.25 * L]]), pitch=rng.uniform(-0.15, 0.1),
                          turn=walk_turns)
    if path == "orbit":
        return paths.orbit(np.array([0.0, 0.0, 0.0]), rng.uniform(0.3, 0.7) * L, rng.uniform(5, 30), n, fov, overlap, rng)
    return paths.random_look_at(np.array([0.0, 0.0, 3.0]), 10.0, (0.25 * L, 0.7 * L), (0.05, 0.6), n, fov, overlap, rng)


DOMINANT_MATERIAL_MAX = 0.95


def _bad_views(world: World, extrinsics: np.ndarray, intrinsics: np.ndarray, width: int, height: int, nthreads: int) -> int:
    """How many views start inside a solid, see a surface closer than ``near``, see too little geometry, or
    see one material only (a bare wall or ground), checked with 16×16 probe rays."""
    probe = 16
    scale = np.diag([probe / width, probe / height, 1.0])
    rays = np.stack([pixel_rays(scale @ K, E, probe, probe) for E, K in zip(extrinsics, intrinsics)])
    cast = world.cast(rays, nthreads)
    t = cast["t_hit"]
    bad = 0
    for k, E in enumerate(extrinsics):
        hit = np.isfinite(t[k])
        eye = -E[:, :3].T @ E[:, 3]
        if (not camera_is_free(world, eye)) or hit.mean() < world.info["min_coverage"] or (hit.any() and t[k][hit].min() < world.info["near"]):
            bad += 1
            continue
        mats = world.mesh["material"][cast["primitive_ids"][k][hit].astype(np.int64)]
        if np.bincount(mats).max() > DOMINANT_MATERIAL_MAX * len(mats):
            bad += 1
    return bad


def plan_cameras(world: World, seed: int, num_views: int, width: int, height: int, config: SyntheticConfig | None = None) -> _Plan:
    """Cameras for ``world``: a path allowed for its kind, a field of view and overlap from the config, retried
    (up to ``probe_tries``) until no view is inside a solid, too close to a surface or looking at nothing."""
    config = config or SyntheticConfig()
    rng = np.random.default_rng([seed, 1])
    kind = world.info["kind"]
    allowed = [p for p in PATHS[kind] if p in config.camera_paths] or list(PATHS[kind][:1])
    best = None
    for _ in range(max(config.probe_tries, 1)):
        path = str(rng.choice(allowed))
        fov = np.deg2rad(rng.uniform(*config.fov_deg))
        overlap = float(rng.uniform(*config.overlap))
        E = _path_cameras(world, path, num_views, fov, overlap, rng, config.walk_turns)
        Ks = []
        for _k in range(num_views):
            f = fov * (1 + rng.uniform(-1, 1) * config.focal_jitter)
            K = intrinsics_from_fov(f, width, height)
            K[:2, 2] += rng.uniform(-1, 1, 2) * config.principal_jitter * np.array([width, height])
            Ks.append(K)
        Ks = np.stack(Ks)
        bad = _bad_views(world, E, Ks, width, height, config.nthreads)
        if best is None or bad < best[0]:
            best = (bad, _Plan(kind, path, float(fov), overlap, E, Ks))
        if bad == 0:
            break
    return best[1]


def generate_scene(seed: int, num_views: int = 8, width: int = 224, height: int = 224, config: SyntheticConfig | None = None) -> Scene:
    """Render scene ``seed``: ``num_views`` views of ``width × height``.

    Returns a :class:`Scene` with ``images`` (uint8 RGB), ``depths`` (float32 z, 0 = sky/background),
    ``masks`` (bool), ``extrinsics`` camera-from-world ``[S, 3, 4]`` in the engine's world frame (z up, metres)
    and ``intrinsics`` ``[S, 3, 3]``; ``meta`` holds ``seed``, ``kind``, ``path``, ``fov_deg``, ``overlap``.
    """
    config = config or SyntheticConfig()
    world = build_world(seed, config)
    plan = plan_cameras(world, seed, num_views, width, height, config)
    out = render_views(world, plan.extrinsics, plan.intrinsics, width, height, nthreads=config.nthreads)
    return Scene(
        names=[f"{i:03d}.png" for i in range(num_views)],
        widths=[width] * num_views,
        heights=[height] * num_views,
        images=list(out["images"]),
        extrinsics=plan.extrinsics,
        intrinsics=plan.intrinsics,
        depths=list(out["depths"]),
        masks=list(out["masks"]),
        meta={"seed": int(seed), "kind": plan.kind, "path": plan.path, "fov_deg": float(np.rad2deg(plan.fov)),
              "overlap": plan.overlap, "source": "mum.data.synthetic"},
    )
