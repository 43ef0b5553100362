"""Optional camera refinement with COLMAP (pycolmap): SIFT features and exhaustive matching on the input
views, triangulation seeded with the predicted cameras, then bundle adjustment of poses, focal lengths and
points. The refined cameras replace the predicted ones, expressed again in the prediction's frame
(first camera = world, same scale), so depth maps and point clouds stay consistent with them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from app.native_stderr import native_stderr_to
from app.reconstruction import Reconstruction
from mum.errors import UserError


def _to_colmap_params(K: np.ndarray) -> list[float]:
    # COLMAP puts pixel centres at half-integers, the project at integers
    return [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]) + 0.5, float(K[1, 2]) + 0.5]


def _from_colmap_params(params: Sequence[float]) -> np.ndarray:
    fx, fy, cx, cy = params
    return np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1.0]])


def _reexpress(cams: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Similarity-transform refined cam_from_world ``[S,4,4]`` so that camera 0 equals ``reference[0]`` and the
    spread of camera centres matches ``reference``'s (bundle adjustment has a free similarity gauge)."""
    def centres(T: np.ndarray) -> np.ndarray:
        return -np.einsum("sji,sj->si", T[:, :3, :3], T[:, :3, 3])

    c_ref, c_new = centres(reference), centres(cams)
    spread_ref = np.linalg.norm(c_ref - c_ref[0], axis=1).mean()
    spread_new = np.linalg.norm(c_new - c_new[0], axis=1).mean()
    s = spread_ref / spread_new if spread_new > 1e-12 else 1.0
    # world_new → world_ref: x_ref = inv(ref0) · cam0 · x_new, with translations rescaled
    out = cams.copy()
    out[:, :3, 3] *= s
    align = np.linalg.inv(out[0]) @ reference[0]  # maps ref-world points to new-world points
    return out @ align


def _incremental_reconstruction(pycolmap, database: Path, image_dir: Path, out: Path, num_views: int):
    """COLMAP's incremental mapping from the matched database; the largest model, which must register every
    view (the exports need a camera for each), else a :class:`UserError`."""
    out.mkdir()
    models = pycolmap.incremental_mapping(database, image_dir, out)
    best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    registered = 0 if best is None else best.num_reg_images()
    if registered < num_views:
        raise UserError(f"--refine: the predicted cameras triangulate no track and COLMAP's own mapping registers "
                        f"{registered} of {num_views} views (too little texture or overlap)")
    return best


def refine_cameras(
    recon: Reconstruction,
    arrays: Sequence[np.ndarray],
    say: Optional[Callable[[str], None]] = None,
    refine_focal: bool = True,
    rounds: int = 3,
    native_log: Optional[str | os.PathLike] = None,
) -> dict:
    """Refine ``recon``'s cameras in place from the views ``arrays`` (``uint8`` RGB, original size).

    ``native_log``: where COLMAP's C++ log lines go (e.g. ``os.devnull``; default: the process's stderr).
    Returns a report: observations, 3D points and mean reprojection error (px) before and after adjustment."""
    with native_stderr_to(native_log):
        return _refine(recon, arrays, say, refine_focal, rounds)


def _refine(recon: Reconstruction, arrays: Sequence[np.ndarray], say: Optional[Callable[[str], None]],
            refine_focal: bool, rounds: int) -> dict:
    import cv2
    import pycolmap

    say = say or (lambda _m: None)
    pycolmap.logging.minloglevel = max(int(pycolmap.logging.minloglevel), 2)  # COLMAP's INFO lines: errors only
    with tempfile.TemporaryDirectory(prefix="mum-refine-") as tmp:
        tmp = Path(tmp)
        image_dir = tmp / "images"
        image_dir.mkdir()
        names = [f"{i:05d}.png" for i in range(recon.num_views)]
        for name, arr in zip(names, arrays):
            cv2.imwrite(str(image_dir / name), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
        database = tmp / "database.db"
        say("refine: extracting and matching SIFT features")
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "PINHOLE"
        # one shared camera when every view has the same size (a single device): its focal length is then
        # well constrained; otherwise one camera per view
        shared = len(set(recon.image_sizes)) == 1
        mode = pycolmap.CameraMode.SINGLE if shared else pycolmap.CameraMode.PER_IMAGE
        K_init = np.median(recon.intrinsics, axis=0) if shared else None
        pycolmap.extract_features(
            database, image_dir, image_names=names, camera_mode=mode, reader_options=reader, device=pycolmap.Device.cpu
        )
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
        rec = pycolmap.Reconstruction()
        db = pycolmap.Database.open(str(database))
        try:
            for image in db.read_all_images():
                i = names.index(image.name)
                if not rec.exists_camera(image.camera_id):
                    camera = db.read_camera(image.camera_id)
                    camera.params = _to_colmap_params(recon.intrinsics[i] if K_init is None else K_init)
                    rec.add_camera_with_trivial_rig(camera)
                T = recon.cam_from_world[i]
                rec.add_image_with_trivial_frame(
                    pycolmap.Image(name=image.name, camera_id=image.camera_id, image_id=image.image_id),
                    pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3]),
                )
        finally:
            db.close()
        say("refine: triangulating with the predicted cameras")
        options = pycolmap.BundleAdjustmentOptions()
        options.refine_focal_length = refine_focal
        options.refine_principal_point = False
        options.print_summary = False
        before = None
        for round_ in range(rounds):  # re-triangulate with the improved cameras, adjust again
            out = tmp / f"round{round_}"
            out.mkdir()
            previous = pycolmap.Reconstruction(rec)  # triangulate_points rebuilds the tracks of its input
            triangulated = pycolmap.triangulate_points(rec, database, image_dir, out)
            if triangulated.num_points3D() == 0 and round_ == 0:
                # the predicted cameras are too far off for any track to pass COLMAP's triangulation checks:
                # start from COLMAP's own incremental reconstruction instead (already bundle-adjusted)
                say("refine: the predicted cameras triangulate no track; running COLMAP incremental mapping")
                rec = _incremental_reconstruction(pycolmap, database, image_dir, tmp / "mapping", recon.num_views)
                before = {"points3D": 0, "reprojection_px": float("nan"), "initialised_by": "incremental mapping"}
                break
            if triangulated.num_points3D() == 0:
                rec = previous  # re-triangulation lost every track: keep the previous round's adjusted model
                break
            rec = triangulated
            if before is None:
                before = {"points3D": rec.num_points3D(), "reprojection_px": rec.compute_mean_reprojection_error()}
                say(f"refine: bundle adjustment of {rec.num_points3D()} points, {rounds} rounds")
            pycolmap.bundle_adjustment(rec, options)
        after = {"points3D": rec.num_points3D(), "reprojection_px": rec.compute_mean_reprojection_error()}
        refined = recon.cam_from_world.copy()
        K = recon.intrinsics.copy()
        for image in rec.images.values():
            i = names.index(image.name)
            refined[i, :3, :] = image.cam_from_world().matrix()
            K[i] = _from_colmap_params(rec.cameras[image.camera_id].params)
    refined = _reexpress(refined, recon.cam_from_world)
    # keep network intrinsics consistent with the refined focal lengths
    recon.network_intrinsics[:, 0, 0] *= K[:, 0, 0] / recon.intrinsics[:, 0, 0]
    recon.network_intrinsics[:, 1, 1] *= K[:, 1, 1] / recon.intrinsics[:, 1, 1]
    recon.cam_from_world, recon.intrinsics = refined, K
    report = {"before": before, "after": after, "registered_views": int(rec.num_reg_images())}
    say(
        f"refine: reprojection error {before['reprojection_px']:.2f} px -> {after['reprojection_px']:.2f} px "
        f"({after['points3D']} points, {report['registered_views']}/{recon.num_views} views)"
    )
    return report
