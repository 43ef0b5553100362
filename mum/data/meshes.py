"""Triangle-mesh primitives for the synthetic engine, collected into one mesh with per-corner texture
coordinates and normals and a material index per triangle (world frame: z up, metres)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Material:
    """``texture`` indexes the world's texture list; ``tint`` multiplies the albedo (linear RGB)."""

    texture: int
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


class MeshBuilder:
    """Accumulates primitives. UVs are in texture repetitions (``uv_scale`` repetitions per metre)."""

    def __init__(self) -> None:
        self._vertices: list[np.ndarray] = []
        self._faces: list[np.ndarray] = []
        self._uvs: list[np.ndarray] = []
        self._normals: list[np.ndarray] = []
        self._materials: list[np.ndarray] = []
        self._count = 0

    # ------------------------------------------------------------------------------------------ core
    def add(self, vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, material: int, smooth: bool = False) -> None:
        """Add a mesh ``vertices [V, 3]``, ``faces [F, 3]`` (indices into vertices), ``uvs [V, 2]``; corner
        normals are the face normal (flat), or with ``smooth`` the area-weighted mean of the faces around
        each vertex."""
        vertices = np.asarray(vertices, np.float64)
        faces = np.asarray(faces, np.int64)
        if smooth:
            tri = vertices[faces]
            face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            vn = np.zeros_like(vertices)
            for k in range(3):
                np.add.at(vn, faces[:, k], face_n)
            vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
            corner_n = vn[faces]
        else:
            corner_n = None  # flat: computed for all flat triangles at once in build()
        self._vertices.append(vertices)
        self._faces.append(faces + self._count)
        self._uvs.append(np.asarray(uvs, np.float64)[faces])
        self._normals.append(corner_n)
        self._materials.append(np.full(len(faces), material, np.int32))
        self._count += len(vertices)

    def build(self) -> dict[str, np.ndarray]:
        """``vertices [V,3]`` float32, ``triangles [T,3]`` uint32, ``corner_uv [T,3,2]``, ``corner_normal [T,3,3]``
        float32, ``material [T]`` int32."""
        vertices = np.concatenate(self._vertices)
        faces = np.concatenate(self._faces)
        flat = np.concatenate([np.full(len(f), n is None) for f, n in zip(self._faces, self._normals)])
        normals = np.empty((len(faces), 3, 3))
        tri = vertices[faces[flat]]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals[flat] = (face_n / np.maximum(np.linalg.norm(face_n, axis=1, keepdims=True), 1e-12))[:, None]
        if not flat.all():
            normals[~flat] = np.concatenate([n for n in self._normals if n is not None])
        return {
            "vertices": vertices.astype(np.float32),
            "triangles": faces.astype(np.uint32),
            "corner_uv": np.concatenate(self._uvs).astype(np.float32),
            "corner_normal": normals.astype(np.float32),
            "material": np.concatenate(self._materials),
        }

    # ---------------------------------------------------------------------------------------- shapes
    def quad(self, origin, e1, e2, material: int, uv_scale: float = 1.0, uv_fit: bool = False) -> None:
        """Rectangle ``origin + s·e1 + t·e2`` for ``s, t ∈ [0, 1]``; ``uv_fit`` maps the texture once onto it."""
        o, e1, e2 = (np.asarray(a, np.float64) for a in (origin, e1, e2))
        v = np.stack([o, o + e1, o + e1 + e2, o + e2])
        if uv_fit:
            uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float64)
        else:
            l1, l2 = np.linalg.norm(e1), np.linalg.norm(e2)
            uv = np.array([[0, 0], [l1, 0], [l1, l2], [0, l2]]) * uv_scale
        self.add(v, [[0, 1, 2], [0, 2, 3]], uv, material)

    def box(self, center, size, material: int | list[int], yaw: float = 0.0, uv_scale: float = 1.0) -> None:
        """Axis-aligned box (then rotated by ``yaw`` about z) with ``size = (sx, sy, sz)``; ``material`` is one
        index or six (−x, +x, −y, +y, −z, +z)."""
        c = np.asarray(center, np.float64)
        hx, hy, hz = np.asarray(size, np.float64) / 2
        cy, sy = np.cos(yaw), np.sin(yaw)
        Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        ax, ay, az = Rz[:, 0] * hx, Rz[:, 1] * hy, Rz[:, 2] * hz
        mats = [material] * 6 if isinstance(material, (int, np.integer)) else list(material)
        # each face: origin corner, e1, e2 with e1 × e2 pointing outwards
        faces = [
            (c - ax - ay - az, 2 * ay, 2 * az),  # -x
            (c + ax - ay - az, 2 * az, 2 * ay),  # +x  (ordered to keep outward normal)
            (c - ax - ay - az, 2 * az, 2 * ax),  # -y
            (c - ax + ay - az, 2 * ax, 2 * az),  # +y
            (c - ax - ay - az, 2 * ax, 2 * ay),  # -z (wrong orientation is harmless: shading is two-sided)
            (c - ax - ay + az, 2 * ax, 2 * ay),  # +z
        ]
        for (o, e1, e2), m in zip(faces, mats):
            self.quad(o, e1, e2, int(m), uv_scale)

    def heightfield(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, material: int, uv_scale: float = 1.0) -> None:
        """Terrain over the grid ``x [nx]`` × ``y [ny]`` with heights ``z [ny, nx]``, smooth normals."""
        X, Y = np.meshgrid(x, y)
        v = np.stack([X.ravel(), Y.ravel(), z.ravel()], 1)
        nx, ny = len(x), len(y)
        idx = np.arange(nx * ny).reshape(ny, nx)
        a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
        faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
        self.add(v, faces, v[:, :2] * uv_scale, material, smooth=True)

    def sphere(self, center, radius: float | np.ndarray, material: int, n_lat: int = 16, n_lon: int = 32, displace=None) -> None:
        """UV sphere; ``displace(dirs [V,3]) -> [V]`` multiplies the radius (for blobby objects)."""
        lat = np.linspace(0, np.pi, n_lat + 1)
        lon = np.linspace(0, 2 * np.pi, n_lon + 1)
        LON, LAT = np.meshgrid(lon, lat)
        d = np.stack([np.sin(LAT) * np.cos(LON), np.sin(LAT) * np.sin(LON), np.cos(LAT)], -1).reshape(-1, 3)
        r = radius * (displace(d) if displace is not None else 1.0)
        v = np.asarray(center, np.float64) + d * np.reshape(r, (-1, 1))
        uv = np.stack([LON.ravel() / (2 * np.pi) * 4, LAT.ravel() / np.pi * 2], 1)
        self.add(v, _grid_faces(n_lat + 1, n_lon + 1), uv, material, smooth=True)

    def cylinder(self, base, radius: float, height: float, material: int, n: int = 24, top_radius: float | None = None, caps: bool = True) -> None:
        """Vertical cylinder (or cone frustum with ``top_radius``) standing on ``base``."""
        top_radius = radius if top_radius is None else top_radius
        a = np.linspace(0, 2 * np.pi, n + 1)
        ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
        b = np.asarray(base, np.float64)
        bottom = b + ring * radius
        top = b + ring * top_radius + [0, 0, height]
        v = np.concatenate([bottom, top])
        uv = np.concatenate([np.stack([a * radius, np.zeros_like(a)], 1), np.stack([a * radius, np.full_like(a, height)], 1)])
        faces = [[i, i + 1, n + 2 + i] for i in range(n)] + [[i, n + 2 + i, n + 1 + i] for i in range(n)]
        self.add(v, faces, uv, material, smooth=True)
        if caps:
            for ring_pts, r in ((bottom, radius), (top, top_radius)):
                if r <= 1e-9:
                    continue
                centre = ring_pts[:-1].mean(0)
                v = np.concatenate([ring_pts[:-1], centre[None]])
                faces = [[i, (i + 1) % n, n] for i in range(n)]
                self.add(v, faces, (v[:, :2] - centre[:2]), material)

    def torus(self, center, R: float, r: float, material: int, n_major: int = 32, n_minor: int = 12) -> None:
        a = np.linspace(0, 2 * np.pi, n_major + 1)
        b = np.linspace(0, 2 * np.pi, n_minor + 1)
        A, B = np.meshgrid(a, b, indexing="ij")
        v = np.stack([(R + r * np.cos(B)) * np.cos(A), (R + r * np.cos(B)) * np.sin(A), r * np.sin(B)], -1).reshape(-1, 3)
        uv = np.stack([A.ravel() / (2 * np.pi) * 6, B.ravel() / (2 * np.pi)], 1)
        self.add(v + np.asarray(center, np.float64), _grid_faces(n_major + 1, n_minor + 1), uv, material, smooth=True)

    def prism_roof(self, center, size, material: int, yaw: float = 0.0, uv_scale: float = 1.0) -> None:
        """Gabled roof: a triangular prism with ridge along local x, base ``size = (sx, sy, rise)``."""
        c = np.asarray(center, np.float64)
        hx, hy, h = size[0] / 2, size[1] / 2, size[2]
        cy, sy = np.cos(yaw), np.sin(yaw)
        Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        local = np.array([[-hx, -hy, 0], [hx, -hy, 0], [hx, hy, 0], [-hx, hy, 0], [-hx, 0, h], [hx, 0, h]])
        v = local @ Rz.T + c
        for quad in ([0, 1, 5, 4], [3, 2, 5, 4]):
            p = v[quad]
            self.quad(p[0], p[1] - p[0], p[3] - p[0], material, uv_scale)
        self.add(v[[0, 3, 4]], [[0, 1, 2]], v[[0, 3, 4]][:, 1:] * uv_scale, material)
        self.add(v[[1, 2, 5]], [[0, 1, 2]], v[[1, 2, 5]][:, 1:] * uv_scale, material)


def _grid_faces(rows: int, cols: int) -> np.ndarray:
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
