"""Synthetic engine: analytic depth, multi-view consistency, determinism, seed ranges, overlap control."""

from __future__ import annotations

import numpy as np
import pytest

from geometry_support import project, unproject
from mum.geometry import intrinsics_from_fov, look_at
from mum.data.meshes import Material, MeshBuilder
from mum.data.render import Background, Light, World, render_views
from mum.data.synthetic import (
    SPLITS,
    TEST_SEEDS,
    TRAIN_SEEDS,
    VAL_SEEDS,
    SyntheticConfig,
    build_world,
    generate_scene,
    seed_for,
)
from mum.data.textures import procedural_texture


def _analytic_world():
    mb = MeshBuilder()
    mb.quad([-50, -50, 0], [100, 0, 0], [0, 100, 0], 0)
    mb.sphere([0, 0, 1.0], 1.0, 0, n_lat=128, n_lon=256)
    rng = np.random.default_rng(0)
    sky = Background(np.ones(3, np.float32), np.ones(3, np.float32), np.ones(3, np.float32))
    return World(mb.build(), [Material(0)], [procedural_texture(rng, "checker")],
                 [Light("dir", np.array([1.0, 1.0, 2.0]), np.ones(3, np.float32))], np.full(3, 0.2, np.float32),
                 np.full(3, 0.1, np.float32), sky)


def _analytic_depth(E, K, W, H):
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T @ E[:, :3]  # world dirs, z-param
    o = -E[:, :3].T @ E[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        s_plane = np.where(d[..., 2] < 0, -o[2] / d[..., 2], np.inf)
    hit_plane = o[:2] + np.nan_to_num(s_plane[..., None] * d[..., :2], posinf=1e9, neginf=-1e9)
    s_plane = np.where(np.all(np.abs(hit_plane) < 50, -1), s_plane, np.inf)  # the plane is a 100 m square
    oc = o - np.array([0, 0, 1.0])
    a = np.sum(d * d, -1)
    b = 2 * d @ oc
    c = oc @ oc - 1.0
    disc = b * b - 4 * a * c
    s_sphere = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    s_sphere = np.where(s_sphere > 0, s_sphere, np.inf)
    s = np.minimum(s_plane, s_sphere)
    return np.where(np.isfinite(s), s, 0.0), disc >= 0


def test_depth_matches_analytic_plane_and_sphere():
    world = _analytic_world()
    W, H = 96, 72
    E = np.stack([look_at([4, -3, 2.5], [0, 0, 0.8]), look_at([-2, 2, 0.6], [0, 0, 1.2])])
    K = np.stack([intrinsics_from_fov(np.deg2rad(60), W, H)] * 2)
    K[1, 0, 2] += 7.3  # off-centre principal point
    out = render_views(world, E, K, W, H)
    for i in range(2):
        ref, near_sphere = _analytic_depth(E[i], K[i], W, H)
        got = out["depths"][i]
        assert np.mean((got > 0) == (ref > 0)) > 0.995  # masks agree except at silhouettes
        both = (got > 0) & (ref > 0)
        rel = np.abs(got[both] - ref[both]) / ref[both]
        plane_only = both & ~near_sphere
        assert np.max(rel[plane_only[both]]) < 1e-4  # the plane is exact
        assert np.median(rel) < 1e-3 and np.percentile(rel, 99) < 1e-2  # the sphere is a tessellation
        assert not out["masks"][i][0].all()  # sky above the horizon is invalid
        assert out["images"][i].std() > 5


def _consistency(scene, i, j):
    """(fraction of view-i pixels seen by view j whose reprojected depth matches j's depth within 1 %,
    fraction that would float in front of j's visible surface)."""
    Ei, Ej, Ki, Kj = scene.extrinsics[i], scene.extrinsics[j], scene.intrinsics[i], scene.intrinsics[j]
    pts = unproject(scene.depths[i], Ki, Ei)[scene.masks[i]]
    uv, z = project(pts, Kj, Ej)
    H, W = scene.depths[j].shape
    px = np.round(uv).astype(int)
    inside = (z > 0) & (px[:, 0] >= 1) & (px[:, 0] < W - 1) & (px[:, 1] >= 1) & (px[:, 1] < H - 1)
    px, z = px[inside], z[inside]
    dj = scene.depths[j]
    visible = dj[px[:, 1], px[:, 0]]
    neigh = np.stack([dj[px[:, 1] + a, px[:, 0] + b] for a in (-1, 0, 1) for b in (-1, 0, 1)])
    neigh = np.where(neigh > 0, neigh, np.inf).min(0)
    match = np.abs(z - visible) < 0.01 * z
    in_front = z < neigh * (1 - 0.01)
    return float(match.mean()) if len(z) else 0.0, float(in_front.mean()) if len(z) else 0.0, len(z)


@pytest.mark.parametrize("kind", ["room", "object", "terrain"])
def test_multiview_reprojection_consistency(kind):
    config = SyntheticConfig(kinds=(kind,), overlap=(0.8, 0.9))
    for seed in (11, 12):
        scene = generate_scene(seed, 4, 96, 72, config)
        assert scene.meta["kind"] == kind
        for i, j in ((0, 1), (1, 2), (2, 3)):
            match, in_front, n = _consistency(scene, i, j)
            if n < 200:
                continue
            assert in_front < 0.01, (seed, i, j, in_front)  # no surface point floats in front of another view's surface
            assert match > 0.5, (seed, i, j, match)  # most shared pixels land on the same surface point


def test_deterministic_from_seed_and_resolution_independent_world():
    a = generate_scene(7, 3, 64, 48)
    b = generate_scene(7, 3, 64, 48)
    for x, y in zip(a.images + a.depths, b.images + b.depths):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.extrinsics, b.extrinsics)
    c = generate_scene(8, 3, 64, 48)
    assert not np.array_equal(a.images[0], c.images[0])
    big = generate_scene(7, 3, 128, 96)  # same world and cameras at another resolution
    np.testing.assert_allclose(big.extrinsics, a.extrinsics)
    np.testing.assert_allclose(big.intrinsics[:, 0, 0], 2 * a.intrinsics[:, 0, 0])


def test_seed_ranges_disjoint():
    ranges = [TRAIN_SEEDS, VAL_SEEDS, TEST_SEEDS]
    for r1 in ranges:
        for r2 in ranges:
            if r1 is not r2:
                assert r1.stop <= r2.start or r2.stop <= r1.start
    assert seed_for("test", 0) == TEST_SEEDS.start and seed_for("train", 5) == 5
    with pytest.raises(IndexError):
        seed_for("val", len(SPLITS["val"]))


def test_every_kind_renders_with_sane_ground_truth():
    for kind in ("room", "object", "terrain"):
        scene = generate_scene(3, 3, 64, 48, SyntheticConfig(kinds=(kind,)))
        for img, d, m in zip(scene.images, scene.depths, scene.masks):
            assert img.dtype == np.uint8 and img.shape == (48, 64, 3) and img.std() > 3
            assert d.dtype == np.float32 and m.dtype == bool
            assert np.all(d[m] > 0) and np.all(d[~m] == 0) and m.mean() > 0.05
        R = scene.extrinsics[:, :, :3]
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
        if kind == "room":
            assert all(m.all() for m in scene.masks)  # a closed room: every ray hits


def _mean_overlap(overlap):
    vals = []
    for seed in range(4):
        scene = generate_scene(seed, 3, 64, 48, SyntheticConfig(kinds=("room",), camera_paths=("orbit",), overlap=(overlap, overlap)))
        vals.append(np.mean([_consistency(scene, i, i + 1)[2] / scene.masks[i].sum() for i in range(2)]))
    return float(np.mean(vals))


def test_overlap_parameter_controls_shared_content():
    assert _mean_overlap(0.9) > _mean_overlap(0.3) + 0.15


@pytest.mark.parametrize("seed", range(4))
def test_a_video_walk_turns_at_the_bounds_along_an_arc_not_in_one_frame(seed):
    """A walk with ``walk_turns="arc"`` that meets its bounds again and again (a 2 m square, 600 views) stays
    inside them and turns as a filmed walk does: consecutive views never differ by more than a few degrees (an
    instant turn-around between two frames is a cut that no video has), and the walker keeps moving."""
    from mum.data.cameras import walk
    from mum.geometry import camera_centers

    turn = SyntheticConfig(walk_turns="arc").walk_turns

    fov, overlap = np.radians(65.0), 0.9
    bounds = np.array([[-1.0, -1.0], [1.0, 1.0]])
    E = walk(np.array([0.0, 0.0, 1.5]), 0.3, 600, 0.35, fov, overlap, np.random.default_rng(seed), bounds=bounds,
             turn=turn)
    E4 = np.concatenate([E, np.tile([[[0, 0, 0, 1.0]]], (len(E), 1, 1))], 1)
    centres = camera_centers(E4)[:, :2]
    assert np.all(centres >= bounds[0] - 1e-9) and np.all(centres <= bounds[1] + 1e-9)
    cos = (np.einsum("nij,nij->n", E[1:, :, :3], E[:-1, :, :3]) - 1) / 2
    turn = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert turn.max() < np.degrees(3 * (1 - overlap) * fov)  # ~20 degrees; a turn-around in one frame is 108-180
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.mean(steps < 1e-9) < 0.1  # standing to turn: rare
    assert np.ptp(centres, axis=0).min() > 1.0  # it walks through the square, not in a corner


def test_world_has_textures_from_photos_when_asked():
    world = build_world(5, SyntheticConfig(photo_fraction=1.0))
    assert len(world.textures) >= 3
    with pytest.raises(ValueError):
        SyntheticConfig(kinds=("castle",))


def test_user_photo_folder_textures(tmp_path):
    import cv2

    from mum.data.textures import PhotoBank
    from mum.errors import UserError

    img = np.zeros((64, 96, 3), np.uint8)
    img[:, :48] = (255, 0, 0)
    cv2.imwrite(str(tmp_path / "red_blue.png"), img)
    bank = PhotoBank([tmp_path])
    assert len(bank) == 1
    crop = bank.crop(np.random.default_rng(0), 32)
    assert crop.shape == (32, 32, 3) and crop.max() <= 1.0
    (tmp_path / "none").mkdir()
    with pytest.raises(UserError, match="no readable images"):
        PhotoBank([tmp_path / "none"])
    scene = generate_scene(1, 2, 32, 32, SyntheticConfig(photo_dirs=(str(tmp_path),), photo_fraction=1.0))
    assert scene.num_views == 2


def test_default_photo_dirs_skip_synthetic_demo_scenes(tmp_path, monkeypatch):
    """Photo textures come from real demo photos only: a demo scene marked synthetic is not a texture source."""
    from mum.data import textures

    for name in ("real_a", "synth", "real_b"):
        (tmp_path / name / "images").mkdir(parents=True)
    (tmp_path / "synth" / textures.SYNTHETIC_MARKER).write_text("{}")
    monkeypatch.setattr(textures, "DEMO_DIR", tmp_path)
    monkeypatch.delenv("MUM_TEXTURE_DIRS", raising=False)
    assert textures.default_photo_dirs() == [tmp_path / "real_a" / "images", tmp_path / "real_b" / "images"]


def _wrap_bilinear(level: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Reference: bilinear sample of one tiling image at ``u, v`` (1 = one repetition), texel centres at
    ``(i + 0.5) / size``, wrapping at every edge."""
    h, w = level.shape[:2]
    x, y = (u % 1.0) * w - 0.5, (v % 1.0) * h - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    at = lambda yy, xx: level[yy % h, xx % w]  # noqa: E731
    return (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy)
            + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)


def test_texture_atlas_looks_up_each_texture_and_mip_level_as_if_alone():
    """One remap over the packed atlas gives, for every hit, the bilinear wrapped sample of its own texture at
    the mip level its footprint selects (textures of different sizes, coordinates far outside [0, 1))."""
    from mum.data.textures import Texture, TextureAtlas

    rng = np.random.default_rng(3)
    textures = [Texture(rng.random((s, s, 3), dtype=np.float32)) for s in (64, 32, 16, 64)]
    atlas = TextureAtlas(textures, width=128)  # narrow: several shelves
    n = 4000
    tex = rng.integers(0, len(textures), n)
    u, v = rng.uniform(-3, 5, n).astype(np.float32), rng.uniform(-3, 5, n).astype(np.float32)
    level = rng.integers(0, 6, n)
    sizes = np.array([t.size for t in textures])
    footprint = (2.0 ** level / sizes[tex]).astype(np.float32)  # exactly level `level` texels per pixel
    got = atlas.lookup(tex, u, v, footprint)
    for i in range(n):
        lv = textures[tex[i]].levels[min(level[i], len(textures[tex[i]].levels) - 1)]
        want = _wrap_bilinear(lv, u[i : i + 1].astype(np.float64), v[i : i + 1].astype(np.float64))[0]
        np.testing.assert_allclose(got[i], want, atol=2e-3, err_msg=f"hit {i}: texture {tex[i]}, level {level[i]}")
    assert atlas.lookup(tex[:0], u[:0], v[:0], footprint[:0]).shape == (0, 3)  # e.g. a view without sky
    assert atlas.sample(tex[:0], u[:0], v[:0], footprint[:0]).shape == (0, 3)


def _sample_grid(atlas, texture: int, repetitions: int, per_repetition: int, offset: float = 0.0) -> np.ndarray:
    """``[n, n, 3]`` samples of one texture over ``repetitions`` × ``repetitions`` texture units, at level 0."""
    n = repetitions * per_repetition
    u, v = np.meshgrid((np.arange(n) + 0.5) / per_repetition + offset, (np.arange(n) + 0.5) / per_repetition + offset)
    u, v = u.ravel().astype(np.float32), v.ravel().astype(np.float32)
    footprint = np.full(u.size, 1.0 / atlas.sizes[texture], np.float32)
    return atlas.sample(np.full(u.size, texture), u, v, footprint).reshape(n, n, 3)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_tiling_textures_do_not_repeat_at_their_period():
    """A large surface does not show one texture again and again: samples one repetition apart are unrelated
    (exact tiling: correlation 1, and a feature matcher finds twins shifted by one period), while the texture
    stays continuous (no seams: neighbouring samples differ no more than inside the texture itself)."""
    from mum.data.textures import Texture, TextureAtlas, value_noise

    rng = np.random.default_rng(5)
    image = np.stack([value_noise(rng, 64, octaves=6, base=2) for _ in range(3)], -1)
    atlas = TextureAtlas([Texture(image), Texture(image, tiling=False)])
    period = 64
    tiled = _sample_grid(atlas, 0, 4, period, offset=-1.3)
    exact = _sample_grid(atlas, 1, 4, period, offset=-1.3)  # shown once: wraps exactly
    for axis in (0, 1):
        assert _correlation(exact, np.roll(exact, period, axis)) > 0.999
        assert abs(_correlation(tiled, np.roll(tiled, period, axis))) < 0.3
    step = lambda img: np.percentile(np.abs(np.diff(img, axis=1)), 99)  # noqa: E731
    assert step(tiled) < 2.0 * step(exact)
    np.testing.assert_allclose(tiled.mean((0, 1)), exact.mean((0, 1)), atol=0.05)  # same colours on the whole


def test_structured_textures_move_by_whole_cells():
    """Stochastic tiling moves a regular pattern only by its lattice: tiles' grout stays on the grid lines
    everywhere, so the structure is kept while the cells' content changes."""
    from mum.data.textures import TextureAtlas, pattern_tiles, Texture

    rng = np.random.default_rng(2)
    image, lattice = pattern_tiles(rng, 64)
    n = round(1 / lattice[0][0])
    atlas = TextureAtlas([Texture(image, lattice=lattice)])
    grout = atlas.lookup(np.zeros(1, np.intp), np.array([0.5 / 64], np.float32), np.array([0.3], np.float32),
                         np.array([1 / 64], np.float32))[0]
    per_repetition = 64
    samples = _sample_grid(atlas, 0, 3, per_repetition)
    cells = per_repetition // n
    on_grid = samples[:, ::cells]  # texel columns starting every tile: the grout
    np.testing.assert_allclose(on_grid, np.broadcast_to(grout, on_grid.shape), atol=1e-4)
    broken = TextureAtlas([Texture(image)])  # the same image without its lattice: grout moves off the grid
    assert np.abs(_sample_grid(broken, 0, 3, per_repetition)[:, ::cells] - grout).max() > 0.05


def test_atlas_samples_more_points_than_one_remap_holds(monkeypatch):
    """cv2.remap takes maps of fewer than 32767 rows: a sample of more points (100 views of 640 × 480 px) is
    remapped in blocks of rows, and gives what one call would (here with blocks of 3 rows of 1024 points)."""
    import mum.data.textures as textures
    from mum.data.textures import Texture, TextureAtlas, value_noise

    rng = np.random.default_rng(7)
    image = np.stack([value_noise(rng, 64, octaves=4, base=2) for _ in range(3)], -1)
    atlas = TextureAtlas([Texture(image), Texture(image, tiling=False)])
    n = 10_000
    texture, u, v = rng.integers(0, 2, n), rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
    footprint = np.full(n, 0.01)
    whole = atlas.sample(texture, u, v, footprint)
    monkeypatch.setattr(textures, "REMAP_MAX_ROWS", 3)
    np.testing.assert_array_equal(atlas.sample(texture, u, v, footprint), whole)
