"""Ray-cast rendering of a synthetic world with Open3D's ``RaycastingScene`` (Embree on CPU): exact z-depth,
validity mask and Lambertian shading (hemispherical ambient + point/directional lights with cast shadows) of
mip-mapped textures, then a shared exposure and the sRGB curve.

World frame: z up. Ray directions are ``Rᵀ K⁻¹ [u, v, 1]`` so that the hit parameter is the z-depth itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mum.geometry import pixel_rays
from mum.data.meshes import Material
from mum.data.textures import Texture, TextureAtlas, linear_to_srgb

SHADOW_EPS = 1e-3
SRGB_LUT = (linear_to_srgb(np.linspace(0, 1, 4096, dtype=np.float32)) * 255 + 0.5).astype(np.uint8)  # linear → 8-bit sRGB


@dataclass
class Light:
    """``kind`` "point" (``vector`` = position) or "dir" (``vector`` = direction towards the light)."""

    kind: str
    vector: np.ndarray
    color: np.ndarray
    shadows: bool = True


@dataclass
class Background:
    """Colour of rays that hit nothing: a sky gradient (``zenith``, ``horizon``, ``ground``), optionally with a
    photograph wrapped around as a panorama (``photo``)."""

    zenith: np.ndarray
    horizon: np.ndarray
    ground: np.ndarray
    photo: Texture | None = None
    photo_yaw: float = 0.0

    def color(self, dirs: np.ndarray) -> np.ndarray:
        """Linear RGB ``[N, 3]`` float32 seen along world directions ``dirs [N, 3]`` (any length)."""
        d = dirs.T / np.linalg.norm(dirs, axis=-1)  # [3, N] unit
        elev = d[2]
        if self.photo is not None:
            az = (np.arctan2(d[1], d[0]) + self.photo_yaw) / (2 * np.pi)
            el = 0.5 - np.arcsin(np.clip(elev, -1, 1)) / np.pi * 1.6
            return self.photo.sample(np.stack([az * 2, el], 1), np.full(len(elev), 2.0))
        zenith, horizon, ground = (np.asarray(c, np.float32)[:, None] for c in (self.zenith, self.horizon, self.ground))
        up = np.sqrt(np.clip(elev, 0, 1))
        down = np.clip(-elev * 4, 0, 1)
        out = np.where(elev >= 0, horizon + (zenith - horizon) * up, horizon + (ground - horizon) * down)
        return out.T.astype(np.float32)


@dataclass
class World:
    """Everything the renderer needs: mesh arrays (see :meth:`MeshBuilder.build`), materials, textures,
    lights, ambient colours (sky from above, ground from below) and background."""

    mesh: dict[str, np.ndarray]
    materials: list[Material]
    textures: list[Texture]
    lights: list[Light]
    ambient_sky: np.ndarray
    ambient_ground: np.ndarray
    background: Background
    info: dict = field(default_factory=dict)
    _raycaster: object = None
    _corner_attributes: np.ndarray | None = None
    _atlas: TextureAtlas | None = None
    _material_tables: tuple[np.ndarray, np.ndarray] | None = None

    def corner_attributes(self) -> np.ndarray:
        """Normal and texture coordinates of every triangle's corners, interpolated together: ``[3, 5, T]``
        float32 = corner 0, corner 1 − corner 0, corner 2 − corner 0 (built once)."""
        if self._corner_attributes is None:
            c = np.concatenate([self.mesh["corner_normal"], self.mesh["corner_uv"]], -1).transpose(1, 2, 0)  # [3, 5, T]
            self._corner_attributes = np.ascontiguousarray(np.stack([c[0], c[1] - c[0], c[2] - c[0]]))
        return self._corner_attributes

    def atlas(self) -> TextureAtlas:
        """All of :attr:`textures` in one :class:`TextureAtlas` (built once)."""
        if self._atlas is None:
            self._atlas = TextureAtlas(self.textures)
        return self._atlas

    def material_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per material: texture index ``[M]`` and linear tint ``[3, M]`` float32 (built once)."""
        if self._material_tables is None:
            self._material_tables = (np.array([m.texture for m in self.materials], np.intp),
                                     np.array([m.tint for m in self.materials], np.float32).reshape(-1, 3).T.copy())
        return self._material_tables

    def raycaster(self):
        """The Open3D ``RaycastingScene`` of the mesh (built once)."""
        if self._raycaster is None:
            import open3d as o3d

            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(
                o3d.core.Tensor(np.ascontiguousarray(self.mesh["vertices"])),
                o3d.core.Tensor(np.ascontiguousarray(self.mesh["triangles"])),
            )
            self._raycaster = scene
        return self._raycaster

    def cast(self, rays: np.ndarray, nthreads: int = 0) -> dict[str, np.ndarray]:
        """``rays [..., 6]`` float32 → ``t_hit``, ``primitive_ids``, ``primitive_uvs`` as numpy."""
        import open3d as o3d

        rays = np.ascontiguousarray(rays, dtype=np.float32)  # kept alive here: the tensor shares its memory
        out = self.raycaster().cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=nthreads)
        return {k: out[k].numpy() for k in ("t_hit", "primitive_ids", "primitive_uvs")}

    def occluded(self, rays: np.ndarray, tfar: float, nthreads: int = 0) -> np.ndarray:
        """Whether each ray ``[N, 6]`` hits anything with ``0 < t < tfar`` (origins are already offset)."""
        import open3d as o3d

        rays = np.ascontiguousarray(rays, dtype=np.float32)  # kept alive here: the tensor shares its memory
        return self.raycaster().test_occlusions(o3d.core.Tensor.from_numpy(rays), tnear=0.0, tfar=float(tfar), nthreads=nthreads).numpy().astype(bool)


def render_views(world: World, extrinsics: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                 exposure: float | None = None, nthreads: int = 0) -> dict[str, np.ndarray]:
    """Render ``S`` views.

    Args:
        extrinsics: camera-from-world ``[S, 3, 4]``; intrinsics ``[S, 3, 3]`` pixels.
    Returns:
        ``images`` uint8 ``[S, H, W, 3]``, ``depths`` float32 ``[S, H, W]`` (z, 0 where no surface),
        ``masks`` bool ``[S, H, W]``, ``exposure`` (the scale applied before the sRGB curve).

    Shading works on channel-first arrays of the ``N`` hits (``[3, N]``: one contiguous row per coordinate).
    """
    S = len(extrinsics)
    rays = pixel_rays(intrinsics, extrinsics, width, height)
    hit = world.cast(rays, nthreads)
    t = hit["t_hit"]
    mask = np.isfinite(t) & (t > 0)
    flat_rays = rays.reshape(-1, 6)
    flat_mask = mask.ravel()
    radiance = np.empty((flat_rays.shape[0], 3), np.float32)
    radiance[~flat_mask] = world.background.color(flat_rays[~flat_mask, 3:])

    idx = np.flatnonzero(flat_mask)
    if len(idx):
        prim = hit["primitive_ids"].ravel()[idx].astype(np.intp)
        bary = np.ascontiguousarray(hit["primitive_uvs"].reshape(-1, 2)[idx].T)  # weights of corners 1 and 2 [2, N]
        hit_rays = np.ascontiguousarray(flat_rays[idx].T)  # [6, N]
        direction = hit_rays[3:]
        points = hit_rays[:3] + direction * t.ravel()[idx]
        attributes = _interpolate(world.corner_attributes(), prim, bary)
        normals, uv = attributes[:3], attributes[3:]
        normals /= np.sqrt(np.maximum(_dot(normals, normals), 1e-20))
        normals *= -np.sign(_dot(normals, direction) + 1e-12)  # face the camera
        albedo = _albedo(world, prim, uv, idx, t.shape)
        radiance[idx] = (albedo * _irradiance(world, points, normals, nthreads)).T
    radiance = radiance.reshape(S, height, width, 3)
    if exposure is None:
        lum = radiance[:, ::4, ::4].mean(-1)
        exposure = 0.85 / max(float(np.percentile(lum, 97)), 1e-4)
    codes = np.clip(radiance * np.float32(exposure * (len(SRGB_LUT) - 1)) + 0.5, 0, len(SRGB_LUT) - 1).astype(np.int32)
    images = SRGB_LUT[codes]
    depths = np.where(mask, t, 0.0).astype(np.float32)
    return {"images": images, "depths": depths, "masks": mask, "exposure": exposure}


def _interpolate(corners: np.ndarray, prim: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Barycentric interpolation of per-corner attributes ``corners [3, C, T]`` (corner 0, then the changes
    to corners 1 and 2) at hits ``prim [N]`` with weights ``bary [2, N]`` of corners 1 and 2 → ``[C, N]``."""
    c0, d1, d2 = (np.take(c, prim, axis=1) for c in corners)
    return c0 + d1 * bary[0] + d2 * bary[1]


def _albedo(world: World, prim: np.ndarray, uv: np.ndarray, idx: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Texture colour (linear) ``[3, N]`` per hit, with the mip level chosen from the UV change between
    neighbouring pixels (smaller of the forward/backward differences, so edges between surfaces do not blur)."""
    S, H, W = shape
    fp = np.zeros((S, H, W), np.float32)
    img = np.zeros((S, H, W), np.float32)
    for c in range(2):
        img.reshape(-1)[idx] = uv[c]
        for axis in (1, 2):
            d = np.abs(np.diff(img, axis=axis))  # |uv(i+1) - uv(i)|, one shorter along axis
            fwd, bwd = d[_along(axis, slice(1, None))], d[_along(axis, slice(None, -1))]
            lo, hi = np.minimum(fwd, bwd), np.maximum(fwd, bwd)
            robust = np.where(lo > 0, lo, hi)  # interior pixels; an edge pixel has its one difference
            for target, value in ((slice(1, -1), robust), (0, d[_along(axis, 0)]), (-1, d[_along(axis, -1)])):
                view = fp[_along(axis, target)]
                np.maximum(view, value, out=view)
    footprint = fp.reshape(-1)[idx]
    texture_of, tint_of = world.material_tables()
    mat_ids = world.mesh["material"][prim]
    return world.atlas().sample(texture_of[mat_ids], uv[0], uv[1], footprint).T * np.take(tint_of, mat_ids, axis=1)


def _along(axis: int, index) -> tuple:
    """Index ``index`` along ``axis`` of an ``[S, H, W]`` array."""
    key = [slice(None)] * 3
    key[axis] = index
    return tuple(key)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-column dot product of ``[3, N]`` arrays → ``[N]``."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _irradiance(world: World, points: np.ndarray, normals: np.ndarray, nthreads: int) -> np.ndarray:
    """Irradiance ``[3, N]`` at ``points [3, N]`` with ``normals [3, N]``: hemispherical ambient (sky above,
    ground below) plus every light, with cast shadows where the light asks for them."""
    sky, ground = world.ambient_sky.astype(np.float32)[:, None], world.ambient_ground.astype(np.float32)[:, None]
    light = (ground + sky) / 2 + normals[2] * ((sky - ground) / 2)
    for L in world.lights:
        vec = np.asarray(L.vector, np.float32)
        if L.kind == "point":
            to_light = vec[:, None] - points
            dist2 = _dot(to_light, to_light)
            cos = _dot(normals, to_light) / np.sqrt(dist2)
            cos *= 1.0 / np.maximum(dist2, 1e-2)  # falloff
        else:
            ldir = vec / np.linalg.norm(vec)
            cos = ldir @ normals
        np.maximum(cos, 0, out=cos)
        lit = cos > 0
        if L.shadows and lit.any():
            shadow_rays = np.empty((6, len(cos)), np.float32)  # origins off the surface, directions to the light
            np.multiply(normals, np.float32(SHADOW_EPS * 5), out=shadow_rays[:3])
            shadow_rays[:3] += points
            shadow_rays[3:] = to_light if L.kind == "point" else ldir[:, None]
            blocked = world.occluded(shadow_rays.T[lit], 0.999 if L.kind == "point" else np.inf, nthreads)
            cos[np.flatnonzero(lit)[blocked]] = 0
        light += cos * np.asarray(L.color, np.float32)[:, None]
    return light
