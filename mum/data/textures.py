"""Textures for the synthetic engine: procedural patterns and crops of real photographs, as mip pyramids in
linear RGB, sampled with bilinear filtering at a level chosen from the pixel's texture footprint.

Surfaces larger than one texture do not repeat it: a tiling texture is sampled by *stochastic tiling*
(Heitz and Neyret, "High-Performance By-Example Noise using a Histogram-Preserving Blending Operator", HPG 2018):
texture space is covered by a triangle grid, each grid vertex shows the texture at its own pseudo-random offset
(a hash of the vertex and the texture, so the same world renders the same everywhere), and a point blends the
three offsets of its triangle's vertices with sharpened barycentric weights, variance-preserving around the
texture's mean colour (linear for structured patterns). No content is repeated at a fixed period, so a feature matcher cannot find matches
shifted by one period (with exact tiling every feature on a large surface has a twin one period away, and the
shift is geometrically consistent). Patterns with a regular structure (checker, bricks, tiles, windows,
stripes) move by whole cells of their :attr:`Texture.lattice` so the structure stays aligned and only the
detail inside the cells varies. Pictures and backdrops (``tiling=False``) are sampled exactly once.

Photographs come from the repository's real demo scenes (``demo/*/images``, except scenes marked synthetic by
a ``synthetic.json`` beside their ``images/``: the engine's own renders are not photographs), from
``$MUM_TEXTURE_DIRS`` (``os.pathsep`` separated folders) and from any folders passed to :class:`PhotoBank`;
each process loads them once.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

TEXTURE_SIZE = 256
PHOTO_LONG_SIDE = 640
DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"


# stochastic tiling: triangle-grid vertices per texture repetition (Heitz and Neyret's 2·√3: each vertex shows a
# patch of about a third of the texture) and the exponent that sharpens the barycentric blend weights
STOCHASTIC_GRID = 2 * 3**0.5
BLEND_SHARPNESS = 4  # (squared twice in stochastic_tiling)
CONTINUOUS = ((1 / 256, 0.0), (0.0, 1 / 256))  # lattice of textures without structure: any whole texel


class Texture:
    """A texture: ``levels[k]`` is float32 linear RGB ``[S/2^k, S/2^k, 3]``. ``tiling``: repeated over surfaces
    (sampled non-periodically, see the module docstring) or shown once (pictures, backdrops); ``lattice``: two
    vectors (texture units) whose integer combinations move the pattern onto itself — stochastic tiling offsets
    are drawn from it (default: any offset)."""

    def __init__(self, srgb: np.ndarray, tiling: bool = True,
                 lattice: tuple[tuple[float, float], tuple[float, float]] | None = None) -> None:
        base = srgb_to_linear(np.clip(srgb.astype(np.float32), 0.0, 1.0))
        self.levels = [base]
        while self.levels[-1].shape[0] > 4:
            self.levels.append(cv2.resize(self.levels[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
        self.tiling = tiling
        self.lattice = CONTINUOUS if lattice is None else lattice
        self._atlas: TextureAtlas | None = None

    @property
    def size(self) -> int:
        return self.levels[0].shape[0]

    def sample(self, uv: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Colours ``[N, 3]`` at texture coordinates ``uv [N, 2]`` (1 = one repetition) with ``footprint [N]`` =
        texels of level 0 covered by one pixel (see :meth:`TextureAtlas.sample`)."""
        if self._atlas is None:
            self._atlas = TextureAtlas([self])
        return self._atlas.sample(np.zeros(len(uv), np.intp), uv[:, 0], uv[:, 1], np.asarray(footprint, np.float32) / self.size)


REMAP_COLUMNS = 1024  # cv2.remap takes maps of fewer than 32767 rows and columns: points are folded into rows
REMAP_MAX_ROWS = 32766  # of this many columns, and remapped at most this many rows at a time


class TextureAtlas:
    """Every mip level of several textures packed into one float32 image (shelf packing), each level inside a
    one-texel border copied from its opposite edge, so that one bilinear ``cv2.remap`` samples all hits of a
    frame whatever their texture and level, with the same result as wrapping each level on its own."""

    def __init__(self, textures: Sequence[Texture], width: int = 2048) -> None:
        tiles = [(k, level, img) for k, tex in enumerate(textures) for level, img in enumerate(tex.levels)]
        self.num_levels = np.array([len(t.levels) for t in textures], np.intp)
        self.sizes = np.array([t.size for t in textures], np.float32)
        self.tiling = np.array([t.tiling for t in textures], bool)
        self.lattices = np.array([np.ravel(t.lattice) for t in textures], np.float32).reshape(-1, 4).T.copy()  # [4, T]
        self.means = np.array([t.levels[-1].reshape(-1, 3).mean(0) for t in textures], np.float32).reshape(-1, 3)
        # variance-preserving blends suit unstructured textures (the three patches are unrelated); the patches of
        # a structured one coincide on its structure, which such a blend would exaggerate: blended linearly
        self.preserve_variance = np.array([t.lattice == CONTINUOUS for t in textures], bool)
        self.max_levels = int(self.num_levels.max())
        width = max(width, max(img.shape[1] for _, _, img in tiles) + 2)
        # table column k * max_levels + level: (x, y) of the level's texel (0, 0) centre minus 0.5, then (w, h)
        self.table = np.zeros((4, len(textures) * self.max_levels), np.float32)
        places, x, y, shelf = [], 0, 0, 0
        for k, level, img in sorted(tiles, key=lambda tile: -tile[2].shape[0]):  # tallest first
            h, w = img.shape[:2]
            if x + w + 2 > width:
                x, y, shelf = 0, y + shelf, 0
            places.append((x, y, img))
            self.table[:, k * self.max_levels + level] = (x + 0.5, y + 0.5, w, h)
            x, shelf = x + w + 2, max(shelf, h + 2)
        self.image = np.empty((y + shelf, width, 3), np.float32)
        for x, y, img in places:
            h, w = img.shape[:2]
            self.image[y : y + h + 2, x : x + w + 2] = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_WRAP)

    def sample(self, texture: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Colours ``[N, 3]`` of textures ``texture [N]`` (indices into the atlas's list) at texture coordinates
        ``u, v [N]`` (1 = one repetition) at the mip level whose texels match ``footprint [N]``, the change of
        ``uv`` between neighbouring pixels: tiling textures by stochastic tiling (non-periodic, see the module
        docstring), the others by :meth:`lookup`."""
        texture = np.asarray(texture, np.intp)
        tiled = self.tiling[texture]
        if not tiled.any():
            return self.lookup(texture, u, v, footprint)
        out = np.empty((len(texture), 3), np.float32)
        once = np.flatnonzero(~tiled)
        if len(once):
            out[once] = self.lookup(texture[once], u[once], v[once], footprint[once])
        tiled = np.flatnonzero(tiled)
        k = texture[tiled]
        tu, tv = u[tiled].astype(np.float32), v[tiled].astype(np.float32)
        weights, du, dv = stochastic_tiling(tu, tv, k, np.take(self.lattices, k, axis=1))
        place = self._places(k, footprint[tiled])
        patches = self._remap(tuple(np.tile(c, 3) for c in place), (du + tu).ravel(), (dv + tv).ravel())
        mean = self.means[k]
        patches = patches.reshape(3, len(tiled), 3)
        blend = patches[0] * weights[0][:, None]
        blend += patches[1] * weights[1][:, None]
        blend += patches[2] * weights[2][:, None]  # Σ w·x; variance-preserving: μ + (Σ w·x − μ) / ‖w‖ (Σ w = 1)
        scale = np.where(self.preserve_variance[k], 1 / np.sqrt((weights * weights).sum(0)), np.float32(1))[:, None]
        blend -= mean
        blend *= scale
        blend += mean
        out[tiled] = np.maximum(blend, 0.0)
        return out

    def lookup(self, texture: np.ndarray, u: np.ndarray, v: np.ndarray, footprint: np.ndarray) -> np.ndarray:
        """Plain sampling: colours ``[N, 3]`` of ``texture [N]`` at ``u, v [N]`` wrapping at every repetition (the
        texture tiled exactly), bilinear at the mip level of ``footprint [N]``."""
        if len(u) == 0:
            return np.empty((0, 3), np.float32)
        return self._remap(self._places(np.asarray(texture, np.intp), footprint), u, v)

    def _places(self, texture: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, ...]:
        """``x0, y0, w, h [N]``: where in the atlas the mip level of ``texture [N]`` for ``footprint [N]`` lies."""
        texels = np.maximum(footprint * self.sizes[texture], 1.0)
        level = np.minimum(np.rint(np.log2(texels)), self.num_levels[texture] - 1).astype(np.intp)
        key = texture * self.max_levels + level
        return tuple(np.take(column, key) for column in self.table)

    def _remap(self, place: tuple[np.ndarray, ...], u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear colours ``[N, 3]`` at ``u, v [N]`` (wrapped) of the atlas regions ``place`` (:meth:`_places`)."""
        x0, y0, w, h = place
        m = len(u)
        cols = REMAP_COLUMNS  # remap wants maps smaller than 32767 per side: fold into rows of 1024
        map_x, map_y = np.zeros((2, -(-m // cols), cols), np.float32)
        np.multiply(u - np.floor(u), w, out=map_x.reshape(-1)[:m])
        map_x.reshape(-1)[:m] += x0
        np.multiply(v - np.floor(v), h, out=map_y.reshape(-1)[:m])
        map_y.reshape(-1)[:m] += y0
        rows = REMAP_MAX_ROWS  # ... and at most that many rows per call (100 views of 640 × 480 px make 90 000)
        out = np.concatenate([cv2.remap(self.image, map_x[r:r + rows], map_y[r:r + rows], cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE) for r in range(0, len(map_x), rows)])
        return out.reshape(-1, 3)[:m]


def _hash(i: np.ndarray, j: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A well-mixed ``uint32`` per integer triple (Wellons' lowbias32 over a linear combination)."""
    with np.errstate(over="ignore"):
        h = (i.astype(np.uint32) * np.uint32(0x8DA6B343)) ^ (j.astype(np.uint32) * np.uint32(0xD8163841))
        h ^= k.astype(np.uint32) * np.uint32(0xCB1AB31F)
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x7FEB352D)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x846CA68B)
        h ^= h >> np.uint32(16)
    return h


def stochastic_tiling(u: np.ndarray, v: np.ndarray, texture: np.ndarray, lattice: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For texture coordinates ``u, v [N]`` of textures ``texture [N]``: blend weights ``[3, N]`` (sharpened,
    summing to 1) and texture offsets ``du, dv [3, N]`` of the three triangle-grid vertices around each point
    (Heitz and Neyret's grid). Each vertex's offset is ``a·e1 + b·e2`` (wrapped) for the texture's ``lattice
    [4, N]`` (``e1u, e1v, e2u, e2v``) with integers ``a, b ∈ [0, 256)`` drawn by a hash of the vertex and the
    texture."""
    x = u * np.float32(STOCHASTIC_GRID)
    y = v * np.float32(STOCHASTIC_GRID)
    sx, sy = x - np.float32(0.57735027) * y, np.float32(1.15470054) * y  # skewed grid: equilateral triangles
    bx, by = np.floor(sx), np.floor(sy)
    fx, fy = sx - bx, sy - by
    fz = 1 - fx - fy
    upper = (fz <= 0).astype(np.int32)  # the cell's upper triangle: vertices (1, 1), (1, 0), (0, 1)
    bx, by = bx.astype(np.int32), by.astype(np.int32)
    vx = np.stack([bx + upper, bx + upper, bx + 1 - upper])
    vy = np.stack([by + upper, by + 1 - upper, by + upper])
    flip = upper.astype(bool)
    weights = np.stack([np.abs(fz), np.where(flip, 1 - fy, fy), np.where(flip, 1 - fx, fx)])
    np.clip(weights, 0, 1, out=weights)
    weights *= weights
    weights *= weights  # BLEND_SHARPNESS = 4
    weights /= np.maximum(weights.sum(0), np.float32(1e-12))
    h = _hash(vx, vy, np.broadcast_to(texture, vx.shape))
    a = (h & np.uint32(0xFF)).astype(np.float32)
    b = ((h >> np.uint32(8)) & np.uint32(0xFF)).astype(np.float32)
    du = a * lattice[0] + b * lattice[2]
    dv = a * lattice[1] + b * lattice[3]
    return weights, du - np.floor(du), dv - np.floor(dv)


def _power(x: np.ndarray, exponent: float) -> np.ndarray:
    """``x ** exponent`` in float32 for ``x >= 0`` of any shape (OpenCV's vectorised pow: ~5× numpy's)."""
    x = np.ascontiguousarray(x, np.float32)
    return cv2.pow(x.reshape(-1, 1), exponent).reshape(x.shape)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Gamma-2.2 sRGB in [0, 1] → linear, float32."""
    return _power(x, 2.2)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear → gamma-2.2 sRGB, clipped to [0, 1], float32."""
    return _power(np.clip(x, 0.0, 1.0), 1 / 2.2)


# ------------------------------------------------------------------------------------------- procedural
def value_noise(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 4, persistence: float = 0.55) -> np.ndarray:
    """Tileable fractal value noise ``[size, size]`` in about [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        if cells > size:
            break
        grid = rng.random((cells, cells), dtype=np.float32)
        grid = np.pad(grid, ((0, 1), (0, 1)), mode="wrap")  # periodic
        up = cv2.resize(grid, (size + size // cells, size + size // cells), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:size, :size]
        total += amp
        amp *= persistence
    out /= total
    lo, hi = np.percentile(out, [1, 99])
    return np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)


def random_color(rng: np.random.Generator, sat: tuple[float, float] = (0.1, 0.8), val: tuple[float, float] = (0.2, 0.95)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a (1 − t) + b t`` per pixel: colours ``a, b [3]`` (or images), weights ``t [H, W]``."""
    return a + t[..., None] * (b - a)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    u, v = np.meshgrid(np.arange(size, dtype=np.float32) / size, np.arange(size, dtype=np.float32) / size)
    return u, v


def pattern_noise(rng, size):
    return _mix(random_color(rng), random_color(rng), value_noise(rng, size))


def pattern_checker(rng, size):
    n = int(rng.choice([2, 4, 8]))
    u, v = _grid(size)
    t = ((np.floor(u * n) + np.floor(v * n)) % 2).astype(np.float32)
    base = _mix(random_color(rng), random_color(rng), t)
    return base * (0.85 + 0.3 * value_noise(rng, size)[..., None]), ((1 / n, 1 / n), (1 / n, -1 / n))


def pattern_stripes(rng, size):
    n = int(rng.integers(2, 12))
    u, v = _grid(size)
    w = value_noise(rng, size, octaves=3) * 0.15 * rng.random()
    t = (np.sin(2 * np.pi * n * (u + w)) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    return _mix(random_color(rng), random_color(rng), t), ((1 / n, 0.0), CONTINUOUS[1])


def pattern_bricks(rng, size):
    rows, cols = int(rng.choice([4, 8])), int(rng.choice([2, 4]))
    u, v = _grid(size)
    row = np.floor(v * rows)
    uu = u * cols + 0.5 * (row % 2)
    mortar = (np.abs(v * rows - np.round(v * rows)) < 0.06) | (np.abs(uu - np.round(uu)) < 0.03)
    brick = random_color(rng, sat=(0.3, 0.7), val=(0.3, 0.7))
    cell = (np.floor(uu) * 7 + row * 13) % 5 / 5.0
    color = brick[None, None] * (0.75 + 0.25 * cell[..., None]) * (0.8 + 0.4 * value_noise(rng, size)[..., None])
    return np.where(mortar[..., None], random_color(rng, sat=(0, 0.1), val=(0.6, 0.9)), color), ((1 / cols, 0.0), (0.5 / cols, 1 / rows))


def pattern_tiles(rng, size):
    n = int(rng.choice([2, 4, 8]))
    u, v = _grid(size)
    fu, fv = u * n % 1, v * n % 1
    grout = (fu < 0.04) | (fv < 0.04)
    a, b = random_color(rng), random_color(rng)
    t = ((np.floor(u * n) * 3 + np.floor(v * n) * 5) % 3 / 2.0).astype(np.float32)
    return np.where(grout[..., None], random_color(rng, val=(0.1, 0.9)), _mix(a, b, t * rng.random())), ((1 / n, 0.0), (0.0, 1 / n))


def pattern_wood(rng, size):
    u, v = _grid(size)
    n = value_noise(rng, size, octaves=4, base=2)
    rings = np.sin(2 * np.pi * (rng.uniform(4, 16) * v + 3 * n)) * 0.5 + 0.5
    dark = random_color(rng, sat=(0.4, 0.8), val=(0.2, 0.4)) * np.array([1.0, 0.7, 0.45], np.float32)
    light = random_color(rng, sat=(0.3, 0.6), val=(0.5, 0.85)) * np.array([1.0, 0.8, 0.55], np.float32)
    return _mix(dark, light, rings.astype(np.float32))


def pattern_voronoi(rng, size):
    from scipy.spatial import cKDTree

    k = int(rng.integers(8, 40))
    seeds = rng.random((k, 2))
    tiled = np.concatenate([seeds + [dx, dy] for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    u, v = _grid(size)
    dist, idx = cKDTree(tiled).query(np.stack([u.ravel(), v.ravel()], 1), k=2)
    cell = (idx[:, 0] % k).reshape(size, size)
    palette = np.stack([random_color(rng) for _ in range(k)])
    edge = ((dist[:, 1] - dist[:, 0]) < 0.01).reshape(size, size)
    return np.where(edge[..., None], 0.1, palette[cell])


def pattern_windows(rng, size):
    """Building facade: wall colour with a grid of dark, slightly varied windows."""
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(2, 5))
    u, v = _grid(size)
    fu, fv = u * cols % 1, v * rows % 1
    win = (fu > 0.25) & (fu < 0.75) & (fv > 0.2) & (fv < 0.7)
    wall = random_color(rng, sat=(0.0, 0.4), val=(0.4, 0.9)) * (0.85 + 0.3 * value_noise(rng, size)[..., None])
    glass = random_color(rng, sat=(0.1, 0.4), val=(0.1, 0.35)) * (0.7 + 0.6 * ((np.floor(u * cols) + np.floor(v * rows)) % 3 / 3))[..., None]
    return np.where(win[..., None], glass, wall), ((1 / cols, 0.0), (0.0, 1 / rows))


def pattern_marble(rng, size):
    u, v = _grid(size)
    n = value_noise(rng, size, octaves=6, base=2)
    t = (np.sin(2 * np.pi * (u * rng.integers(1, 4) + 4 * n)) * 0.5 + 0.5) ** 3
    return _mix(random_color(rng, sat=(0, 0.2), val=(0.7, 0.95)), random_color(rng, val=(0.1, 0.5)), t.astype(np.float32))


def pattern_solid(rng, size):
    return random_color(rng)[None, None] * (0.92 + 0.16 * value_noise(rng, size, octaves=3)[..., None])


# each pattern: (rng, size) → image [size, size, 3] (or a colour to broadcast), or (image, lattice) for a
# regular structure (see Texture.lattice)
PATTERNS = {
    "noise": pattern_noise,
    "checker": pattern_checker,
    "stripes": pattern_stripes,
    "bricks": pattern_bricks,
    "tiles": pattern_tiles,
    "wood": pattern_wood,
    "voronoi": pattern_voronoi,
    "windows": pattern_windows,
    "marble": pattern_marble,
    "solid": pattern_solid,
}


def procedural_texture(rng: np.random.Generator, kind: str | None = None, size: int = TEXTURE_SIZE) -> Texture:
    """A random procedural texture (``kind`` one of :data:`PATTERNS`, random when ``None``)."""
    kind = kind or str(rng.choice(list(PATTERNS)))
    made = PATTERNS[kind](rng, size)
    img, lattice = made if isinstance(made, tuple) else (made, None)
    return Texture(np.broadcast_to(img, (size, size, 3)).astype(np.float32), lattice=lattice)


# --------------------------------------------------------------------------------------------- photos
SYNTHETIC_MARKER = "synthetic.json"


def default_photo_dirs() -> list[Path]:
    """The real demo scenes' ``images/`` folders (sorted) and ``$MUM_TEXTURE_DIRS``."""
    dirs = sorted(d for d in DEMO_DIR.glob("*/images") if not (d.parent / SYNTHETIC_MARKER).exists()) if DEMO_DIR.is_dir() else []
    extra = os.environ.get("MUM_TEXTURE_DIRS", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


@lru_cache(maxsize=8)
def _load_photos(dirs: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Every readable image under ``dirs`` (sorted), downscaled to :data:`PHOTO_LONG_SIDE`, float32 sRGB."""
    from PIL import Image

    suffixes = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
    photos = []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.suffix.lower() not in suffixes:
                continue
            try:
                with Image.open(p) as im:
                    im.draft("RGB", (PHOTO_LONG_SIDE, PHOTO_LONG_SIDE))
                    im = im.convert("RGB")
                    im.thumbnail((PHOTO_LONG_SIDE, PHOTO_LONG_SIDE))
                    photos.append(np.asarray(im, dtype=np.float32) / 255.0)
            except Exception:  # an unreadable photo only removes one texture source
                continue
    return tuple(photos)


class PhotoBank:
    """Real photographs to cut textures and backdrops from (loaded once per process)."""

    def __init__(self, dirs: Sequence[str | os.PathLike] | None = None) -> None:
        chosen = default_photo_dirs() if dirs is None else [Path(d) for d in dirs]
        self.photos = _load_photos(tuple(str(d) for d in chosen))
        if dirs is not None and dirs and not self.photos:
            from mum.errors import UserError

            raise UserError(f"{', '.join(str(d) for d in dirs)}: no readable images to cut textures from")

    def __len__(self) -> int:
        return len(self.photos)

    def crop(self, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
        """A random square crop, resized to ``size``, float32 sRGB. Not mirrored: mirror-tiling would make
        symmetric textures, which are ambiguous for matching (stochastic tiling hides the wrap seams)."""
        photo = self.photos[int(rng.integers(len(self.photos)))]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.25, 0.8) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        return cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)

    def texture(self, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> Texture:
        return Texture(self.crop(rng, size))

    def picture(self, rng: np.random.Generator, size: int = TEXTURE_SIZE) -> Texture:
        """A whole photo (not mirrored) squeezed to a square, for pictures on walls and backdrops."""
        photo = self.photos[int(rng.integers(len(self.photos)))]
        return Texture(cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA), tiling=False)


def random_texture(rng: np.random.Generator, photos: PhotoBank | None, photo_fraction: float, kinds: Sequence[str] | None = None) -> Texture:
    """A photo crop with probability ``photo_fraction`` (when photos exist), else a procedural pattern."""
    if photos is not None and len(photos) and rng.random() < photo_fraction:
        return photos.texture(rng)
    return procedural_texture(rng, None if kinds is None else str(rng.choice(list(kinds))))
