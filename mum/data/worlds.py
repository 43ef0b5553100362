"""Procedural scene kinds for the synthetic engine (world frame: z up, metres): ``room`` (a closed room with
furniture-like boxes, tables, lamps and pictures), ``object`` (a textured object on a ground plane or floating
in front of a photographic backdrop, for turntable orbits) and ``terrain`` (fractal terrain with buildings,
trees and sky). Each builder returns a :class:`~mum.data.render.World`, whose ``info`` carries what camera
planning needs (``solids``: boxes cameras must stay out of)."""

from __future__ import annotations

import numpy as np

from mum.data.meshes import Material, MeshBuilder
from mum.data.render import Background, Light, World
from mum.data.textures import (
    PhotoBank,
    Texture,
    procedural_texture,
    random_color,
    random_texture,
    srgb_to_linear,
    value_noise,
)

KINDS = ("room", "object", "terrain")


class _Palette:
    """Collects textures and materials for one world."""

    def __init__(self, rng: np.random.Generator, photos: PhotoBank | None, photo_fraction: float) -> None:
        self.rng, self.photos, self.photo_fraction = rng, photos, photo_fraction
        self.textures: list[Texture] = []
        self.materials: list[Material] = []

    def material(self, kinds=None, photo_fraction: float | None = None, tint: float = 0.15) -> int:
        frac = self.photo_fraction if photo_fraction is None else photo_fraction
        self.textures.append(random_texture(self.rng, self.photos, frac, kinds))
        t = tuple(np.clip(1 + self.rng.normal(0, tint, 3), 0.5, 1.5))
        self.materials.append(Material(len(self.textures) - 1, t))
        return len(self.materials) - 1

    def picture(self) -> int:
        if self.photos is not None and len(self.photos):
            self.textures.append(self.photos.picture(self.rng))
        else:
            self.textures.append(procedural_texture(self.rng))
        self.materials.append(Material(len(self.textures) - 1))
        return len(self.materials) - 1


def _sky(rng: np.random.Generator) -> Background:
    zenith = srgb_to_linear(np.array([rng.uniform(0.2, 0.5), rng.uniform(0.4, 0.7), rng.uniform(0.75, 1.0)], np.float32))
    horizon = srgb_to_linear(np.clip(np.array([0.85, 0.9, 0.95], np.float32) + rng.normal(0, 0.05, 3), 0, 1).astype(np.float32))
    ground = srgb_to_linear(random_color(rng, sat=(0.1, 0.4), val=(0.2, 0.5)))
    return Background(zenith * 1.5, horizon * 1.5, ground)


def _inside_any(p: np.ndarray, solids: list, margin: float) -> bool:
    for c, half, yaw in solids:
        d = p - c
        cy, sy = np.cos(-yaw), np.sin(-yaw)
        local = np.array([cy * d[0] - sy * d[1], sy * d[0] + cy * d[1], d[2]])
        if np.all(np.abs(local) <= np.asarray(half) + margin):
            return True
    return False


def camera_is_free(world: World, eye: np.ndarray, margin: float = 0.15) -> bool:
    """Whether ``eye`` lies inside the world's camera region and outside every solid."""
    lo, hi = world.info["camera_box"]
    if not (np.all(eye >= lo) and np.all(eye <= hi)):
        return False
    return not _inside_any(eye, world.info["solids"], margin)


# ------------------------------------------------------------------------------------------------ room
def build_room(rng: np.random.Generator, photos: PhotoBank | None, photo_fraction: float = 0.5) -> World:
    pal = _Palette(rng, photos, photo_fraction)
    mb = MeshBuilder()
    Lx, Ly, Hz = rng.uniform(4, 9), rng.uniform(4, 9), rng.uniform(2.4, 3.4)
    hx, hy = Lx / 2, Ly / 2
    floor = pal.material(["wood", "tiles", "marble", "checker", "noise"])
    ceiling = pal.material(["solid", "noise"], photo_fraction=0.1)
    shared = pal.material(["solid", "bricks", "stripes", "noise", "tiles"])
    walls = [shared if rng.random() < 0.6 else pal.material(["solid", "bricks", "stripes", "noise"]) for _ in range(4)]
    uv = rng.uniform(0.3, 1.0)
    mb.quad([-hx, -hy, 0], [Lx, 0, 0], [0, Ly, 0], floor, uv)
    mb.quad([-hx, -hy, Hz], [Lx, 0, 0], [0, Ly, 0], ceiling, uv)
    mb.quad([-hx, -hy, 0], [Lx, 0, 0], [0, 0, Hz], walls[0], uv)
    mb.quad([-hx, hy, 0], [Lx, 0, 0], [0, 0, Hz], walls[1], uv)
    mb.quad([-hx, -hy, 0], [0, Ly, 0], [0, 0, Hz], walls[2], uv)
    mb.quad([hx, -hy, 0], [0, Ly, 0], [0, 0, Hz], walls[3], uv)

    free_r = 0.28 * min(Lx, Ly)
    solids: list = []
    furniture_mats = [pal.material() for _ in range(int(rng.integers(3, 6)))]
    n_items = int(rng.integers(5, 13))
    for _ in range(n_items):
        kind = rng.choice(["cabinet", "table", "sofa", "lamp", "ball", "crate"], p=[0.25, 0.2, 0.15, 0.1, 0.1, 0.2])
        w, d = rng.uniform(0.4, 1.6), rng.uniform(0.35, 0.9)
        for _try in range(20):
            x, y = rng.uniform(-hx + 0.3, hx - 0.3), rng.uniform(-hy + 0.3, hy - 0.3)
            if np.hypot(x, y) > free_r + 0.5 * max(w, d):
                break
        else:
            continue
        yaw = (np.round(rng.uniform(0, 4)) * np.pi / 2) if rng.random() < 0.7 else rng.uniform(0, np.pi)
        mat = int(rng.choice(furniture_mats))
        if kind == "cabinet" or kind == "crate":
            h = rng.uniform(0.4, 2.0) if kind == "cabinet" else rng.uniform(0.3, 0.8)
            mb.box([x, y, h / 2], [w, d, h], mat, yaw)
            solids.append((np.array([x, y, h / 2]), (w / 2, d / 2, h / 2), yaw))
            if kind == "crate" and rng.random() < 0.5:  # stack
                h2 = rng.uniform(0.2, 0.5)
                mb.box([x, y, h + h2 / 2], [w * 0.7, d * 0.7, h2], int(rng.choice(furniture_mats)), yaw + rng.normal(0, 0.3))
        elif kind == "table":
            h, top = rng.uniform(0.65, 0.8), 0.05
            mb.box([x, y, h - top / 2], [w + 0.3, d + 0.2, top], mat, yaw)
            c, s = np.cos(yaw), np.sin(yaw)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    lx, ly = sx * (w / 2), sy * (d / 2)
                    mb.box([x + c * lx - s * ly, y + s * lx + c * ly, (h - top) / 2], [0.06, 0.06, h - top], mat, yaw)
            for _o in range(int(rng.integers(0, 3))):  # things on the table
                ox, oy = x + rng.uniform(-w / 3, w / 3), y + rng.uniform(-d / 4, d / 4)
                r = rng.uniform(0.05, 0.15)
                m2 = int(rng.choice(furniture_mats))
                if rng.random() < 0.5:
                    mb.sphere([ox, oy, h + r], r, m2, 10, 20)
                else:
                    mb.cylinder([ox, oy, h], r, rng.uniform(0.1, 0.4), m2, 16)
            solids.append((np.array([x, y, h / 2]), ((w + 0.3) / 2, (d + 0.2) / 2, h / 2), yaw))
        elif kind == "sofa":
            h = rng.uniform(0.35, 0.5)
            mb.box([x, y, h / 2], [w + 0.6, d, h], mat, yaw)
            c, s = np.cos(yaw), np.sin(yaw)
            bx, by = -s * (d / 2 - 0.1), c * (d / 2 - 0.1)
            mb.box([x + bx, y + by, h + 0.25], [w + 0.6, 0.2, 0.5], mat, yaw)
            solids.append((np.array([x, y, (h + 0.5) / 2]), ((w + 0.6) / 2, d / 2, (h + 0.5) / 2), yaw))
        elif kind == "lamp":
            h = rng.uniform(1.2, 1.9)
            mb.cylinder([x, y, 0], 0.15, 0.03, mat, 16)
            mb.cylinder([x, y, 0.03], 0.02, h, mat, 8, caps=False)
            mb.cylinder([x, y, h - 0.1], 0.25, 0.3, int(rng.choice(furniture_mats)), 20, top_radius=0.12)
            solids.append((np.array([x, y, h / 2]), (0.25, 0.25, h / 2 + 0.2), 0.0))
        else:
            r = rng.uniform(0.15, 0.45)
            mb.sphere([x, y, r], r, mat, 14, 28)
            solids.append((np.array([x, y, r]), (r, r, r), 0.0))
    for _ in range(int(rng.integers(1, 5))):  # pictures on walls
        wall = int(rng.integers(4))
        pw, ph = rng.uniform(0.4, 1.4), rng.uniform(0.3, 1.0)
        z0 = rng.uniform(1.0, max(1.05, Hz - ph - 0.3))
        pic = pal.picture()
        eps = 0.01
        if wall < 2:
            x0 = rng.uniform(-hx + 0.2, hx - 0.2 - pw)
            yw = -hy + eps if wall == 0 else hy - eps
            mb.quad([x0, yw, z0], [pw, 0, 0], [0, 0, ph], pic, uv_fit=True)
        else:
            y0 = rng.uniform(-hy + 0.2, hy - 0.2 - pw)
            xw = -hx + eps if wall == 2 else hx - eps
            mb.quad([xw, y0, z0], [0, pw, 0], [0, 0, ph], pic, uv_fit=True)

    lights = []
    for _ in range(int(rng.integers(1, 3))):
        pos = np.array([rng.uniform(-hx + 0.5, hx - 0.5), rng.uniform(-hy + 0.5, hy - 0.5), Hz - 0.25])
        color = srgb_to_linear(random_color(rng, sat=(0.0, 0.25), val=(0.9, 1.0))) * Hz**2 * rng.uniform(0.8, 2.0)
        lights.append(Light("point", pos, color, shadows=True))
    ambient = rng.uniform(0.1, 0.3)
    world = World(mb.build(), pal.materials, pal.textures, lights,
                  np.full(3, ambient, np.float32), np.full(3, ambient * 0.6, np.float32), _sky(rng))
    world.info = {
        "kind": "room", "size": (Lx, Ly, Hz), "free_radius": free_r, "solids": solids,
        "camera_box": (np.array([-hx + 0.3, -hy + 0.3, 0.3]), np.array([hx - 0.3, hy - 0.3, Hz - 0.3])),
        "near": 0.2, "min_coverage": 0.999,
    }
    return world


# ---------------------------------------------------------------------------------------------- object
def _blob(rng: np.random.Generator):
    k = int(rng.integers(2, 6))
    freqs = rng.normal(0, 2.5, (k, 3))
    phases = rng.uniform(0, 2 * np.pi, k)
    amps = rng.uniform(0.03, 0.15, k)

    def displace(d: np.ndarray) -> np.ndarray:
        return 1.0 + np.sum(amps * np.sin(d @ freqs.T + phases), axis=1)

    return displace


def build_object(rng: np.random.Generator, photos: PhotoBank | None, photo_fraction: float = 0.5) -> World:
    pal = _Palette(rng, photos, photo_fraction)
    mb = MeshBuilder()
    mats = [pal.material() for _ in range(int(rng.integers(2, 5)))]
    solids = []
    grounded = rng.random() < 0.75
    main = rng.choice(["blob", "box", "cylinder", "torus", "stack"])
    r = rng.uniform(0.5, 0.8)
    base_z = 0.0 if grounded else -r
    if main == "blob":
        mb.sphere([0, 0, base_z + r], r, mats[0], 32, 64, displace=_blob(rng))
    elif main == "box":
        size = rng.uniform(0.6, 1.4, 3)
        mb.box([0, 0, base_z + size[2] / 2], size, [int(rng.choice(mats)) for _ in range(6)], rng.uniform(0, np.pi))
    elif main == "cylinder":
        h = rng.uniform(0.6, 1.6)
        mb.cylinder([0, 0, base_z], r * 0.8, h, mats[0], 40, top_radius=r * rng.uniform(0.3, 1.0))
    elif main == "torus":
        mb.torus([0, 0, base_z + r * 0.35], r, r * 0.35, mats[0], 48, 16)
    else:
        z = base_z
        for _ in range(int(rng.integers(2, 5))):
            s = rng.uniform(0.3, 0.8, 3)
            mb.box([rng.normal(0, 0.1), rng.normal(0, 0.1), z + s[2] / 2], s, int(rng.choice(mats)), rng.uniform(0, np.pi))
            z += s[2]
    for _ in range(int(rng.integers(0, 4))):  # smaller parts around
        a, dist, s = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.3), rng.uniform(0.1, 0.3)
        p = np.array([np.cos(a) * dist, np.sin(a) * dist, base_z + s])
        if rng.random() < 0.5:
            mb.sphere(p, s, int(rng.choice(mats)), 12, 24, displace=_blob(rng))
        else:
            mb.box(p, [2 * s, 2 * s, 2 * s], int(rng.choice(mats)), rng.uniform(0, np.pi))
    if grounded:
        ground = pal.material(["wood", "tiles", "checker", "noise", "marble", "voronoi"])
        if rng.random() < 0.7:
            e = rng.uniform(4, 10)
            mb.quad([-e, -e, 0], [2 * e, 0, 0], [0, 2 * e, 0], ground, rng.uniform(0.5, 2.0))
        else:
            mb.cylinder([0, 0, -0.2], rng.uniform(1.4, 2.0), 0.2, ground, 48)
    background = _sky(rng)
    if photos is not None and len(photos) and rng.random() < 0.6:
        background.photo = photos.picture(rng, 512)
        background.photo_yaw = rng.uniform(0, 2 * np.pi)
    elif rng.random() < 0.5:
        c = srgb_to_linear(random_color(rng))
        background = Background(c, c, c)
    sun = np.array([rng.normal(), rng.normal(), rng.uniform(0.5, 1.5)])
    lights = [Light("dir", sun, np.full(3, rng.uniform(1.5, 3.0), np.float32), True),
              Light("dir", -sun * [1, 1, -0.3], np.full(3, rng.uniform(0.1, 0.5), np.float32), False)]
    amb = rng.uniform(0.2, 0.45)
    world = World(mb.build(), pal.materials, pal.textures, lights,
                  np.full(3, amb, np.float32), np.full(3, amb * 0.5, np.float32), background)
    world.info = {
        "kind": "object", "grounded": grounded, "solids": solids, "center": np.array([0.0, 0.0, base_z + r * 0.8]),
        "camera_box": (np.array([-50, -50, 0.15 if grounded else -50]), np.array([50, 50, 50])),
        "near": 0.3, "min_coverage": 0.08,
    }
    return world


# --------------------------------------------------------------------------------------------- terrain
def build_terrain(rng: np.random.Generator, photos: PhotoBank | None, photo_fraction: float = 0.5) -> World:
    pal = _Palette(rng, photos, photo_fraction)
    mb = MeshBuilder()
    L = rng.uniform(40, 80)
    n = 65
    xs = np.linspace(-L, L, n)
    noise = value_noise(rng, 64, octaves=5, base=2)
    noise = np.pad(noise, ((0, 1), (0, 1)), mode="wrap")
    X, Y = np.meshgrid(xs, xs)
    radius = np.hypot(X, Y)
    plaza = 0.3 * L
    blend = np.clip((radius - plaza) / (0.3 * L), 0, 1) ** 2
    Z = (noise - 0.5) * rng.uniform(2, 12) * blend + (noise - 0.5) * 0.3

    def ground_height(x, y):
        i = np.clip((np.asarray(x) + L) / (2 * L) * (n - 1), 0, n - 1)
        j = np.clip((np.asarray(y) + L) / (2 * L) * (n - 1), 0, n - 1)
        return Z[np.round(j).astype(int), np.round(i).astype(int)]

    ground = pal.material(["noise", "voronoi", "tiles", "marble"], photo_fraction=photo_fraction)
    pal.materials[ground].tint = tuple(np.array([0.8, 1.0, 0.7]) * rng.uniform(0.7, 1.1))
    mb.heightfield(xs, xs, Z, ground, rng.uniform(0.1, 0.4))
    solids = []
    facades = [pal.material(["windows", "bricks", "windows", "tiles", "solid"]) for _ in range(int(rng.integers(2, 5)))]
    roofs = [pal.material(["tiles", "solid", "noise", "stripes"], photo_fraction=0.2) for _ in range(2)]
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(5, 16))):
        w, d, h = rng.uniform(4, 14), rng.uniform(4, 14), rng.uniform(3, 25)
        for _try in range(30):
            a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0.22, 0.65) * L
            x, y = rr * np.cos(a), rr * np.sin(a)
            ok = all(np.hypot(x - px, y - py) > (max(w, d) / 1.4 + pr) for px, py, pr in placed)
            if ok:
                break
        else:
            continue
        placed.append((x, y, max(w, d) / 1.4))
        yaw = rng.uniform(0, np.pi)
        z0 = float(ground_height(x, y)) - 1.0
        facade = int(rng.choice(facades))
        mb.box([x, y, z0 + h / 2], [w, d, h], [facade] * 4 + [facade, int(rng.choice(roofs))], yaw, uv_scale=1 / rng.uniform(3, 6))
        if rng.random() < 0.4:
            mb.prism_roof([x, y, z0 + h], (w, d, rng.uniform(1.5, 4)), int(rng.choice(roofs)), yaw, 0.3)
        solids.append((np.array([x, y, z0 + h / 2]), (w / 2, d / 2, h / 2 + 4), yaw))
    trunk = pal.material(["wood", "noise"], photo_fraction=0.0)
    leaves = pal.material(["noise", "voronoi"], photo_fraction=0.0)
    pal.materials[leaves].tint = (0.5, 1.1, 0.4)
    for _ in range(int(rng.integers(0, 25))):
        a, rr = rng.uniform(0, 2 * np.pi), rng.uniform(0.32, 0.9) * L
        x, y = rr * np.cos(a), rr * np.sin(a)
        if any(np.hypot(x - px, y - py) < pr + 1 for px, py, pr in placed):
            continue
        z0, th, cr = float(ground_height(x, y)) - 0.2, rng.uniform(1, 3), rng.uniform(1, 3)
        mb.cylinder([x, y, z0], 0.2, th, trunk, 8, caps=False)
        if rng.random() < 0.5:
            mb.cylinder([x, y, z0 + th], cr, cr * 2.5, leaves, 12, top_radius=0.0)
        else:
            mb.sphere([x, y, z0 + th + cr * 0.8], cr, leaves, 8, 16, displace=_blob(rng))
        solids.append((np.array([x, y, z0 + th]), (cr, cr, th + cr * 2.5), 0.0))
    sun = np.array([rng.normal(), rng.normal(), rng.uniform(0.3, 1.5)])
    sky = _sky(rng)
    lights = [Light("dir", sun, np.full(3, rng.uniform(2.0, 3.5), np.float32) * [1.0, 0.95, 0.85], True)]
    world = World(mb.build(), pal.materials, pal.textures, lights, sky.zenith * 0.35, sky.ground * 0.3, sky)
    world.info = {
        "kind": "terrain", "extent": L, "plaza": plaza, "solids": solids, "ground_height": ground_height,
        "camera_box": (np.array([-0.9 * L, -0.9 * L, -20]), np.array([0.9 * L, 0.9 * L, 80])),
        "near": 0.5, "min_coverage": 0.3,
    }
    return world


BUILDERS = {"room": build_room, "object": build_object, "terrain": build_terrain}
