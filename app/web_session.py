"""One user's reconstruction in the web app, and everything derived from it without running the model again:
the filtered point cloud, the 3D view (GLB), downloads, depth/confidence images and the camera table.

Files are written with the project's export code (:mod:`app.export`), the same as ``mum-reconstruct``.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import export
from app.reconstruction import PointCloud, Reconstruction
from mum.files import atomic_path

VIEWER_MAX_POINTS = 400_000  # what a browser's WebGL view handles smoothly
GALLERY_MAX_VIEWS = 24

CAMERA_TABLE_HEADERS = [
    "view", "name", "source", "width", "height", "fx", "fy", "cx", "cy",
    "center x", "center y", "center z", "qw", "qx", "qy", "qz",
]


@dataclass
class RenderOptions:
    """What the user sees: confidence filter, frames, cameras, background masking, point source."""

    conf_percentile: float = 0.0
    frames: list[int] | None = None  # None = all views
    show_cameras: bool = True
    mask_background: bool = False
    source: str = "depth"
    max_points: int = VIEWER_MAX_POINTS


@dataclass
class Rendered:
    glb: Path
    ply: Path
    cameras_json: Path
    transforms_json: Path | None
    colmap_zip: Path | None
    points: int

    @property
    def downloads(self) -> list[str]:
        files = [self.ply, self.glb, self.cameras_json, self.transforms_json, self.colmap_zip]
        return [str(f) for f in files if f is not None]


@dataclass
class WebScene:
    """The cached result of one session plus its working folder (one sub-folder per render). ``fast``: the
    network-only preview; ``warnings``: the run's warning lines (SfM failed and the cameras are the network's)."""

    recon: Reconstruction
    workdir: Path
    model: str = ""
    renders: int = field(default=0)
    fast: bool = False
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, recon: Reconstruction, root: Path | None = None, model: str = "") -> WebScene:
        root = Path(root or tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        return cls(recon=recon, workdir=Path(tempfile.mkdtemp(prefix="mum-web-", dir=root)), model=model)

    def cloud(self, options: RenderOptions) -> PointCloud:
        return self.recon.point_cloud(
            conf_percentile=options.conf_percentile,
            frames=options.frames,
            mask_background=options.mask_background,
            source=options.source,  # type: ignore[arg-type]
            max_points=options.max_points,
        )

    def render(self, options: RenderOptions, full_exports: bool = True) -> Rendered:
        """Write GLB, PLY and cameras.json (and with ``full_exports`` transforms.json and a COLMAP zip) for
        ``options`` into a fresh folder; the previous render's folder is removed."""
        cloud = self.cloud(options)
        self.renders += 1
        out = self.workdir / f"render_{self.renders:04d}_{uuid.uuid4().hex[:6]}"
        out.mkdir(parents=True)
        for old in self.workdir.glob("render_*"):
            if old != out:
                shutil.rmtree(old, ignore_errors=True)
        glb = export.write_glb(out / "scene.glb", self.recon, cloud, show_cameras=options.show_cameras)
        ply = export.write_ply(out / "scene.ply", cloud)
        cams = export.write_cameras_json(out / "cameras.json", self.recon)
        transforms = colmap_zip = None
        if full_exports:
            transforms, colmap_zip = write_folder_exports(out, self.recon, cloud)
        return Rendered(glb, ply, cams, transforms, colmap_zip, len(cloud))

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def write_folder_exports(out: Path, recon: Reconstruction, cloud: PointCloud) -> tuple[Path | None, Path | None]:
    """The CLI's folder exports (``transforms.json``, COLMAP ``sparse/0``); the COLMAP model is zipped."""
    transforms = colmap_zip = None
    folder = out / "exports"
    for name, write in export.extra_folder_exports():
        write(folder, recon, cloud)
        if name == "transforms.json":
            transforms = Path(shutil.copy(folder / name, out / "transforms.json"))
        elif name.startswith("sparse"):
            colmap_zip = zip_folder(folder / "sparse", out / "colmap_sparse.zip", arc_root="sparse")
    shutil.rmtree(folder, ignore_errors=True)
    return transforms, colmap_zip


def zip_folder(folder: Path, dest: Path, arc_root: str) -> Path:
    # the fastest deflate level: the text files of a large point cloud take seconds at the default level
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, Path(arc_root) / f.relative_to(folder))
    return dest


def parse_frames(selected: Sequence[int] | None, num_views: int) -> list[int] | None:
    """Frame filter from the UI's selected view indices; nothing to filter (all selected) → ``None``."""
    if selected is None:
        return None
    picked = sorted({int(i) for i in selected if 0 <= int(i) < num_views})
    return None if len(picked) == num_views else picked


def frame_labels(names: Sequence[str]) -> list[str]:
    return [f"{i}: {name}" for i, name in enumerate(names)]


def camera_table(recon: Reconstruction) -> list[list]:
    """One row per view: where its camera came from ("sfm" or "network"), image size, intrinsics (original
    pixels), camera centre in the world and the camera-from-world rotation as a quaternion (w, x, y, z)."""
    from scipy.spatial.transform import Rotation

    centers = recon.camera_centers()
    quats = Rotation.from_matrix(recon.cam_from_world[:, :3, :3]).as_quat()  # x, y, z, w
    sources = recon.sources()
    rows = []
    for i, name in enumerate(recon.names):
        K = recon.intrinsics[i]
        w, h = recon.image_sizes[i]
        x, y, z, qw = quats[i]
        rows.append(
            [i, name, sources[i], int(w), int(h)]
            + [round(float(v), 2) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2])]
            + [round(float(v), 4) for v in (*centers[i], qw, x, y, z)]
        )
    return rows


def gallery_items(recon: Reconstruction, max_views: int = GALLERY_MAX_VIEWS) -> list[tuple[np.ndarray, str]]:
    """Per view (at most ``max_views``): the image, its depth and its confidence, colour-mapped, on the grid of
    the dense maps (the network's, or the finer one the default path fits)."""
    from app.plots import confidence_image, depth_image

    items: list[tuple[np.ndarray, str]] = []
    for i in range(min(recon.num_views, max_views)):
        name = recon.names[i]
        items.append((recon.colors[i], f"{i}: {name}"))
        items.append((depth_image(recon.depth[i]), f"{i}: depth"))
        items.append((confidence_image(recon.depth_conf[i]), f"{i}: confidence"))
    return items
