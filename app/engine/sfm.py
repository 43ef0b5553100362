"""Cameras from feature matching and structure-from-motion (pycolmap on the CPU), from scratch.

SIFT features on every view (downscaled to ``max_image_size``), matching of all pairs or of the pairs given
(network-guided, see :mod:`app.engine.pair_selection`), geometric verification and COLMAP's incremental mapping. The
network contributes the initial focal length of every camera (COLMAP's own guess is ``1.2 × max(w, h)``), which
bundle adjustment then refines. When the first mapping leaves views out, it runs once more from COLMAP's own
guess (the pairs verified again without the network's focal length), and the better model is kept, so that a
wrong network focal length cannot cost views; then the pairs are matched again with guided matching and mapped
again; when views are still missing, mapping runs once more with relaxed thresholds (15 inliers for the initial
pair and for registration: two photos, few matches). When the kept model's lens distortion is implausibly large
(``max_corner_distortion``), mapping runs once more without distortion. Of two models the one that registers
more views is kept, of two that register as many the one with the lower mean reprojection error. The kept
model's mapping also returns the mapper's other models on views the kept one lacks (``SfmResult.other_models``:
a scene whose parts share no match); the cameras stage joins them (:func:`app.engine.cameras.join_other_models`).

Same photos and options, same cameras: every random choice is seeded (``random_seed``), the images are
numbered in input order, and mapping and bundle adjustment run on one thread (see :func:`_mapping_options`);
mapping is bounded by counts (COLMAP's trials and iterations), never by time.

Known cameras (:mod:`app.engine.known_cameras`): a view with given intrinsics gets a PINHOLE camera with exactly those
(held constant by bundle adjustment), a view with an EXIF focal length that focal length as a prior (refined,
as COLMAP does); views with identical known intrinsics share a camera. With poses kept (``--fix-poses``) and at
least two views posed, the points are triangulated from the given poses and the other views registered to
them by incremental mapping with those poses fixed: the result is in the given world frame and scale.

Conventions of the result: OpenCV camera-from-world, intrinsics in pixels of the *original* images with pixel
centres at integer coordinates (COLMAP's are at half-integers; converted here), one focal length per camera.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mum.files import scratch_folder
from mum.geometry import centred_intrinsics
from mum.pycolmap_import import import_pycolmap
from mum.io import ViewTransform, warp_view

if TYPE_CHECKING:
    from app.engine.known_cameras import KnownCameras


@dataclass(frozen=True)
class SfmOptions:
    """``max_image_size``: longer side of the images SIFT sees (COLMAP's default is 3200; 1600 keeps SfM on
    demo/buddha at 2736 × 1540 as accurate and twice as fast). ``guided_matching``: when the first mapping
    leaves views unregistered, the pairs are matched again along their verified epipolar geometry (more
    inliers: this registers the two hardest views of demo/buddha) and mapping runs again; it costs about 4×
    the plain matching, so scenes that register at once do not pay it; beyond ``rematch_all_up_to`` views only
    the unregistered views' pairs are matched again, and the relaxed mapping runs only when fewer than half
    the views are registered.
    ``network_focal_prior``: the network's focal length as the initial one (``False``: COLMAP's guess for every
    camera, the ablation benchmark's switch); where it registers fewer views than COLMAP's guess, the guess wins.
    ``camera_model``: COLMAP's default ``SIMPLE_RADIAL`` (one focal length, one radial distortion term; on
    demo/sacre_coeur AUC@30 99.6 against 98.9 with ``SIMPLE_PINHOLE``). The exports are pinhole: the focal
    length and principal point are kept, the small distortion term is dropped, and the reported reprojection
    error is measured with the exported pinhole cameras. ``max_corner_distortion``: when the kept model's
    distortion moves an image corner by more than this share of its distance to the principal point (10 %:
    the real-scene benchmark's cameras move them by at most 1.7 %), mapping runs once more with the distortion-free model
    (``SIMPLE_PINHOLE``) and the better model is kept: on a held-out synthetic walk (pinhole images) the shared
    ``SIMPLE_RADIAL`` camera converged to k ≈ 0.7 (corners moved 17 %) and wrong poses, while ``SIMPLE_PINHOLE``
    registers the same views with the right poses (``tests/test_sfm_distortion.py``); a lens that really
    distorts fits better with the term, so its model stays. ``pinhole_when_implausible``: the pinhole model is
    kept whenever it registers at least half as many views (the sequence path, whose map is one pinhole camera
    and whose PnP registers the keyframes SfM leaves out: on the 1000-frame synthetic walk a chunk's SIMPLE_RADIAL
    model moved the corners by 10 %, with twice the pinhole model's reprojection error, and drifted 10× in scale
    over 150 frames; the pinhole model registered 23 of its 26 keyframes without that drift). ``num_threads``:
    the threads of SIFT extraction and of verification again (``-1``: every core); matching, mapping and bundle
    adjustment run on one thread, so that the same views give the same model every run (see :func:`_matching`,
    :func:`_mapping_options`)."""

    max_image_size: int = 1600
    network_focal_prior: bool = True
    guided_matching: bool = True
    camera_model: str = "SIMPLE_RADIAL"
    num_threads: int = -1
    relaxed_min_inliers: int = 15
    random_seed: int = 0
    sift_first_octave: int = -1
    init_min_tri_angle: float = 16.0  # degrees (COLMAP's default); the sequence path's keyframes move forward
    rematch_all_up_to: int = 30
    max_corner_distortion: float = 0.10
    pinhole_when_implausible: bool = False


@dataclass
class OtherModel:
    """A model COLMAP's mapper built beside the kept one, on views the kept one does not hold (a scene whose
    parts share too few matches to join): ``views`` ``[n]`` indices into the input, their ``cam_from_world``
    ``[n, 4, 4]`` and ``intrinsics`` ``[n, 3, 3]`` in this model's own frame and scale, its ``points`` ``[P, 3]``,
    ``point_colors`` and ``observations`` per view (as :class:`SfmResult`'s). Joined to the kept model by
    :func:`app.engine.cameras.join_other_models`."""

    views: np.ndarray
    cam_from_world: np.ndarray
    intrinsics: np.ndarray
    points: np.ndarray
    point_colors: np.ndarray
    observations: list[tuple[np.ndarray, np.ndarray]]


@dataclass
class SfmResult:
    """``S`` views, ``P`` 3D points. ``cam_from_world`` ``[S, 4, 4]`` (NaN rows for views not registered),
    ``intrinsics`` ``[S, 3, 3]`` original pixels (the initial prior for views not registered), ``points``
    ``[P, 3]``, ``point_colors`` ``[P, 3]`` uint8, ``observations[i]`` = (indices into ``points`` ``[n]``,
    pixel centres ``[n, 2]`` in view ``i``'s original pixels)."""

    registered: np.ndarray
    cam_from_world: np.ndarray
    intrinsics: np.ndarray
    points: np.ndarray
    point_colors: np.ndarray
    observations: list[tuple[np.ndarray, np.ndarray]]
    pairs_matched: int
    pairs_verified: int
    seconds: dict[str, float] = field(default_factory=dict)
    relaxed: bool = False
    initial_focal: str = "network"  # where the kept model's initial focal lengths came from: "network" or "colmap"
    corner_distortion: float = 0.0  # the kept model's (see :func:`corner_distortion`)
    distortion_dropped: bool = False  # the kept model was mapped again without distortion (``max_corner_distortion``)
    other_models: list[OtherModel] = field(default_factory=list)  # the mapper's other models, on other views

    @property
    def num_registered(self) -> int:
        return int(self.registered.sum())


def _colmap_to_K(params: Sequence[float], model: str, tf: ViewTransform) -> np.ndarray:
    """COLMAP camera params (downscaled image, corner-based) → 3×3 K in original pixels, centre-based."""
    f, cx, cy = float(params[0]), float(params[1]), float(params[2])
    if model == "PINHOLE":
        f, cx, cy = np.sqrt(params[0] * params[1]), float(params[2]), float(params[3])
    scale = np.sqrt(tf.sx * tf.sy)
    c = tf.points_to_original(np.array([cx - 0.5, cy - 0.5]))
    return np.array([[f / scale, 0, c[0]], [0, f / scale, c[1]], [0, 0, 1.0]])


def downscale_transform(width: int, height: int, max_size: int) -> ViewTransform:
    """The whole image scaled so that its longer side is at most ``max_size`` (aspect kept within a pixel)."""
    s = min(1.0, max_size / max(width, height))
    W, H = max(1, int(round(width * s))), max(1, int(round(height * s)))
    return ViewTransform((width, height), (W, H), 0.0, 0.0, W / width, H / height)


def _write_images(arrays: Sequence[np.ndarray], folder: Path, max_size: int) -> tuple[list[str], list[ViewTransform]]:
    import cv2

    names, transforms = [], []
    for i, arr in enumerate(arrays):
        tf = downscale_transform(arr.shape[1], arr.shape[0], max_size)
        small = warp_view(arr, tf) if tf.sx < 1 or tf.sy < 1 else arr
        name = f"{i:05d}.bmp"  # uncompressed: written 13x faster than PNG, the same SIFT keypoints
        cv2.imwrite(str(folder / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        names.append(name)
        transforms.append(tf)
    return names, transforms


def _set_focal_priors(database: Path, names: list[str], transforms: list[ViewTransform],
                      focal: np.ndarray) -> dict[int, list[float]]:
    """Initial focal length of a camera that several views share: the median of ``focal`` ``[S]`` (original
    pixels) over them, marked as a prior (verification then estimates essential matrices, not fundamental
    ones: matching of demo/tum_freiburg takes 1.7 s instead of 3.2 s; the guided second pass drops the mark). A camera of one view keeps COLMAP's guess (``1.2 × max(w, h)``): one network
    prediction is too noisy there (on demo/sacre_coeur it is 0.2–1.3× the reference, median 0.65×, and
    mapping registered less accurately with it), while the median over a shared camera's views is closer to
    the reference than COLMAP's guess (demo/tum_freiburg 1.11× vs 1.45×, demo/buddha 1.41× vs 1.76×).
    Returns COLMAP's own parameters of the cameras it changed, by camera id."""
    pycolmap = import_pycolmap()

    guesses: dict[int, list[float]] = {}
    with pycolmap.Database.open(str(database)) as db:
        by_camera: dict[int, list[int]] = {}
        for image in db.read_all_images():
            by_camera.setdefault(image.camera_id, []).append(names.index(image.name))
        for camera_id, views in by_camera.items():
            if len(views) < 2:
                continue
            camera = db.read_camera(camera_id)
            guesses[camera_id] = list(camera.params)
            tf = transforms[views[0]]
            f = float(np.median(focal[views])) * np.sqrt(tf.sx * tf.sy)
            params = list(camera.params)
            params[0] = f
            if camera.model.name == "PINHOLE":
                params[1] = f
            camera.params = params
            camera.has_prior_focal_length = True  # calibrated verification (E, not F): 2x faster matching
            db.update_camera(camera)
    return guesses


def _camera_groups(arrays: Sequence[np.ndarray], known: KnownCameras | None) -> list[tuple[list[int], bool]]:
    """The views that share one COLMAP camera (``True``: several, one camera) or have one each (``False``).
    Without known intrinsics: one camera when all views have one size (one device: a well-posed focal), else
    one per view. With them: views with identical given K (or EXIF focal length) and size share one, views
    with nothing known share one per size."""
    S = len(arrays)
    sizes = [(a.shape[1], a.shape[0]) for a in arrays]
    if known is None or not known.known_intrinsics.any():
        return [(list(range(S)), len(set(sizes)) == 1)]
    groups: dict[tuple, list[int]] = {}
    for i in range(S):
        source = known.intrinsics_source[i]
        key = (source, sizes[i]) + (tuple(np.round(known.K[i].ravel(), 9)) if source else ())
        groups.setdefault(key, []).append(i)
    shared = [(g, True) for g in groups.values() if len(g) > 1]
    alone = [g[0] for g in groups.values() if len(g) == 1]
    return shared + ([(alone, False)] if alone else [])


def _set_known_cameras(database: Path, names: list[str], transforms: list[ViewTransform],
                       known: KnownCameras | None) -> tuple[set[int], set[int]]:
    """Given intrinsics → PINHOLE cameras with exactly those (in the downscaled images' pixels, COLMAP's
    half-integer centres); EXIF focal lengths → initial focal lengths. Both marked as priors. Returns the
    camera ids to hold constant (given) and those whose prior stays (given or EXIF)."""
    pycolmap = import_pycolmap()

    constant: set[int] = set()
    kept: set[int] = set()
    if known is None or not known.known_intrinsics.any():
        return constant, kept
    with pycolmap.Database.open(str(database)) as db:
        first: dict[int, int] = {}
        for image in db.read_all_images():
            first.setdefault(image.camera_id, names.index(image.name))
        for camera_id, i in first.items():
            source = known.intrinsics_source[i]
            if not source:
                continue
            camera = db.read_camera(camera_id)
            tf, K = transforms[i], known.K[i]
            if source == "given":
                c = tf.points_to_network(K[:2, 2]) + 0.5
                camera.model = pycolmap.CameraModelId.PINHOLE
                camera.params = [K[0, 0] * tf.sx, K[1, 1] * tf.sy, float(c[0]), float(c[1])]
                constant.add(camera_id)
            else:
                params = list(camera.params)
                params[0] = K[0, 0] * np.sqrt(tf.sx * tf.sy)
                if camera.model.name == "PINHOLE":
                    params[1] = params[0]
                camera.params = params
            camera.has_prior_focal_length = True
            db.update_camera(camera)
            kept.add(camera_id)
    return constant, kept


def _match_pairs(pycolmap, database: Path, pair_file: Path, names: list[str], pairs: Sequence[tuple[int, int]],
                 matching, verification, replace: bool = False) -> None:
    """Match and verify the listed pairs (``replace``: drop their earlier matches first; COLMAP skips pairs
    that already have matches)."""
    if replace:
        with pycolmap.Database.open(str(database)) as db:
            ids = {image.name: image.image_id for image in db.read_all_images()}
            for i, j in pairs:
                a, b = ids[names[i]], ids[names[j]]
                if db.exists_matches(a, b):
                    db.delete_matches(a, b)
                if db.exists_two_view_geometry(a, b):
                    db.delete_two_view_geometry(a, b)
    pair_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in pairs))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = pair_file
    pycolmap.match_image_pairs(database, matching, pairing, verification, device=pycolmap.Device.cpu)


def _matching(guided: bool = False):
    """SIFT matching options, on one thread. COLMAP's CPU matcher searches a faiss index of each image's
    descriptors; pairs matched on several threads at once sometimes get other (fewer) matches, from process to
    process, and the model changes with them (``benchmarks/matching_determinism.py``, KITTI 07 keyframes); on
    one thread every run gave the same matches. The exact brute-force matcher is also the same every run, but
    ten times slower."""
    pycolmap = import_pycolmap()

    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = 1
    matching.guided_matching = guided
    return matching


def _verification(options: SfmOptions):
    pycolmap = import_pycolmap()

    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = options.random_seed  # the same photos give the same matches
    return verification


def _drop_focal_priors(pycolmap, database: Path, keep: set[int] = frozenset()) -> None:
    """Keep the initial focal lengths but let verification and registration treat them as unknown (except
    the cameras in ``keep``: given or EXIF focal lengths)."""
    with pycolmap.Database.open(str(database)) as db:
        for camera in db.read_all_cameras():
            if camera.has_prior_focal_length and camera.camera_id not in keep:
                camera.has_prior_focal_length = False
                db.update_camera(camera)


def _with_colmap_focal(pycolmap, database: Path, copy: Path, guesses: dict[int, list[float]],
                       options: SfmOptions) -> None:
    """``copy``: ``database`` with the cameras in ``guesses`` back at COLMAP's own initial parameters (no prior
    mark) and every pair verified again, as COLMAP verifies it without a prior (the matches are kept)."""
    shutil.copyfile(database, copy)
    with pycolmap.Database.open(str(copy)) as db:
        for camera_id, params in guesses.items():
            camera = db.read_camera(camera_id)
            camera.params = params
            camera.has_prior_focal_length = False
            db.update_camera(camera)
        db.clear_two_view_geometries()
    verifier = pycolmap.GeometricVerifierOptions()
    verifier.num_threads = options.num_threads
    pycolmap.geometric_verification(copy, verifier, two_view_geometry_options=_verification(options))


def _better(candidate, incumbent) -> bool:
    """``candidate`` (a model or ``None``) registers more views than ``incumbent``, or as many with a lower mean
    reprojection error."""
    if candidate is None:
        return False
    if incumbent is None or candidate.num_reg_images() != incumbent.num_reg_images():
        return incumbent is None or candidate.num_reg_images() > incumbent.num_reg_images()
    return candidate.compute_mean_reprojection_error() < incumbent.compute_mean_reprojection_error()


def corner_distortion(rec) -> float:
    """The largest share by which a camera's distortion moves an image corner towards or away from the principal
    point, over ``rec``'s cameras (0 for pinhole cameras)."""
    worst = 0.0
    for camera in rec.cameras.values():
        f = np.array([camera.focal_length_x, camera.focal_length_y])
        c = np.array([camera.principal_point_x, camera.principal_point_y])
        corners = np.array([[0.0, 0.0], [camera.width, 0.0], [0.0, camera.height], [camera.width, camera.height]])
        pinhole = (corners - c) / f
        undistorted = np.asarray(camera.cam_from_img(corners), np.float64)
        radius = np.linalg.norm(pinhole, axis=1)
        worst = max(worst, float(np.max(np.linalg.norm(undistorted - pinhole, axis=1) / np.maximum(radius, 1e-12))))
    return worst


def _without_distortion(pycolmap, database: Path, copy: Path) -> None:
    """``copy``: ``database`` with every ``SIMPLE_RADIAL`` / ``RADIAL`` camera made ``SIMPLE_PINHOLE`` (focal
    length and principal point kept); matches and verified geometries stay."""
    shutil.copyfile(database, copy)
    with pycolmap.Database.open(str(copy)) as db:
        for camera in db.read_all_cameras():
            if camera.model.name in ("SIMPLE_RADIAL", "RADIAL"):
                params = list(camera.params)[:3]
                camera.model = pycolmap.CameraModelId.SIMPLE_PINHOLE
                camera.params = params
                db.update_camera(camera)


def _verified_pairs(pycolmap, database: Path) -> int:
    with pycolmap.Database.open(str(database)) as db:
        return int(db.num_verified_image_pairs())


def _two_view_model(pycolmap, database: Path, image_dir: Path, out: Path, options: SfmOptions):
    """Two views that incremental mapping refuses (a short baseline fails its 16° / 4° initial triangulation
    angle): the relative pose of their verified two-view geometry with the cameras' initial focal lengths (the
    network's), the inlier matches triangulated, then bundle adjustment of poses and points (focal lengths
    held: two views do not constrain them). ``None`` with too few inliers or triangulated points."""
    with pycolmap.Database.open(str(database)) as db:
        pair_ids, geometries = db.read_two_view_geometries()
        if not geometries:
            return None
        k = int(np.argmax([len(g.inlier_matches) for g in geometries]))
        geometry = geometries[k]
        if len(geometry.inlier_matches) < options.relaxed_min_inliers:
            return None
        id1, id2 = pycolmap.pair_id_to_image_pair(pair_ids[k])
        images = {image.image_id: image for image in db.read_all_images()}
        cameras = [db.read_camera(images[i].camera_id) for i in (id1, id2)]
        points = [db.read_keypoints(i)[:, :2].astype(np.float64) for i in (id1, id2)]
    if not pycolmap.estimate_two_view_geometry_pose(cameras[0], points[0], cameras[1], points[1], geometry):
        return None
    rec = pycolmap.Reconstruction()
    for camera in cameras:
        if not rec.exists_camera(camera.camera_id):
            rec.add_camera_with_trivial_rig(camera)
    poses = [pycolmap.Rigid3d(), geometry.cam2_from_cam1]
    for image_id, camera, pose in zip((id1, id2), cameras, poses):
        image = pycolmap.Image(name=images[image_id].name, camera_id=camera.camera_id, image_id=image_id)
        rec.add_image_with_trivial_frame(image, pose)
    out.mkdir()
    triangulation = pycolmap.IncrementalPipelineOptions()
    triangulation.triangulation.ignore_two_view_tracks = False  # with two views every track is one
    triangulation.triangulation.random_seed = options.random_seed
    triangulation.num_threads = 1  # see _mapping_options
    triangulated = pycolmap.triangulate_points(rec, database, image_dir, out, options=triangulation)
    if triangulated.num_points3D() < options.relaxed_min_inliers:
        return None
    adjustment = pycolmap.BundleAdjustmentOptions()
    adjustment.refine_focal_length = False
    adjustment.refine_extra_params = False
    adjustment.print_summary = False
    adjustment.ceres.solver_options.num_threads = 1  # sums in a fixed order: the same result on every run
    config = pycolmap.BundleAdjustmentConfig()  # what pycolmap.bundle_adjustment sets up, without its side effect:
    for image_id in triangulated.reg_image_ids():  # it turned glog's logtostderr off, leaving a log file in $TMPDIR
        config.add_image(image_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    pycolmap.create_default_bundle_adjuster(adjustment, config, triangulated).solve()
    return triangulated


def _mapping_options(pycolmap, options: SfmOptions, relaxed: bool, constant: set[int]):
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.constant_cameras = set(constant)  # given intrinsics: held by every bundle adjustment
    # one thread: with several, COLMAP's structure-less registration runs parallel RANSAC (threads share one
    # trial counter) and bundle adjustment sums in thread order, so the model changes from run to run
    # (measured on a held-out synthetic 50-view scene: cameras 0.65 units apart); the time hardly changes
    mapping.num_threads = 1
    mapping.min_model_size = 2
    mapping.random_seed = options.random_seed  # the same photos give the same cameras
    mapping.mapper.init_min_tri_angle = options.init_min_tri_angle
    mapping.mapper.random_seed = options.random_seed
    mapping.triangulation.random_seed = options.random_seed
    # Work, not time, bounds mapping: COLMAP's counts (init_num_trials 200 initial pairs, max_num_models 50,
    # max_reg_trials 3 per view, RANSAC and bundle-adjustment iterations). The costly part on hopeless inputs is
    # structure-less registration (a 6-point generalized relative pose in RANSAC, up to ~57 000 trials per
    # attempt): on a held-out synthetic scene with periodic textures it took 30-50 s of CPU per mapping call. It
    # runs in the relaxed pass only, the last resort (demo/buddha registers its 13th view there; the first and
    # guided passes register the same views without it on every demo scene), which cut that scene's mapping
    # from 77 s to 32 s of CPU.
    mapping.structure_less_registration_fallback = relaxed
    if relaxed:
        n = options.relaxed_min_inliers
        mapping.min_num_matches = n
        mapping.mapper.init_min_num_inliers = n
        mapping.mapper.abs_pose_min_num_inliers = n
        mapping.mapper.init_min_tri_angle = 4.0
    return mapping


def _map(pycolmap, database: Path, image_dir: Path, out: Path, options: SfmOptions, relaxed: bool,
         constant: set[int] = frozenset()):
    """Incremental mapping: the model that registers the most views, and the mapper's other models (a scene in
    parts gives one model per part)."""
    out.mkdir()
    mapping = _mapping_options(pycolmap, options, relaxed, constant)
    models = pycolmap.incremental_mapping(database, image_dir, out, mapping)
    ranked = sorted(models.values(), key=lambda r: -r.num_reg_images())  # stable: the mapper's order on ties
    return (ranked[0] if ranked else None), ranked[1:]


def _map_from_poses(pycolmap, database: Path, image_dir: Path, out: Path, options: SfmOptions, relaxed: bool,
                    num_views: int, poses: dict[str, np.ndarray], constant: set[int]):
    """Points triangulated from the given camera-from-world ``poses`` (by image name), then the other views
    registered to them by incremental mapping with those poses fixed (their cameras' intrinsics too, when
    given). ``None`` when the given views share no triangulable match."""
    out.mkdir()
    rec = pycolmap.Reconstruction()
    with pycolmap.Database.open(str(database)) as db:
        for image in db.read_all_images():
            if image.name not in poses:
                continue
            camera = db.read_camera(image.camera_id)
            if not rec.exists_camera(camera.camera_id):
                rec.add_camera_with_trivial_rig(camera)
            T = np.asarray(poses[image.name], np.float64)
            rec.add_image_with_trivial_frame(
                pycolmap.Image(name=image.name, camera_id=image.camera_id, image_id=image.image_id),
                pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3]))
    mapping = _mapping_options(pycolmap, options, relaxed, constant)
    mapping.triangulation.ignore_two_view_tracks = False  # the poses are known: a track of two views is a point
    mapping.triangulation.random_seed = options.random_seed
    (out / "triangulated").mkdir()
    triangulated = pycolmap.triangulate_points(rec, database, image_dir, out / "triangulated", options=mapping)
    if triangulated.num_points3D() == 0:
        return None
    if len(poses) == num_views:
        return triangulated
    triangulated.write(str(out / "triangulated"))
    mapping.fix_existing_frames = True  # the given poses stay exactly as given
    mapping.mapper.fix_existing_frames = True
    models = pycolmap.incremental_mapping(database, image_dir, out / "extended", mapping,
                                          input_path=out / "triangulated")
    extended = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
    if extended is None or extended.num_reg_images() < triangulated.num_reg_images():
        return triangulated
    # the mapper keeps the given poses fixed relative to each other but normalises the model at the end (a
    # similarity): undo it on the given views
    from app.engine.camera_fusion import fit_similarity

    given = [im for im in extended.images.values() if im.name in poses and im.has_pose]
    if len(given) < 2:
        return triangulated
    ours = np.stack([np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]]) for im in given])
    similarity = fit_similarity(ours, np.stack([poses[im.name] for im in given]))
    extended.transform(pycolmap.Sim3d(similarity.scale, pycolmap.Rotation3d(similarity.rotation),
                                      similarity.translation))
    return extended


def run_sfm(
    arrays: Sequence[np.ndarray],
    focal_prior: np.ndarray,
    pairs: Sequence[tuple[int, int]] | None = None,
    options: SfmOptions = SfmOptions(),
    say: Callable[[str], None] | None = None,
    known: KnownCameras | None = None,
) -> SfmResult:
    """Structure-from-motion on ``uint8`` RGB views (original size). ``focal_prior`` ``[S]`` in original
    pixels; ``pairs``: the view pairs to match (``None``: all); ``known``: given/EXIF intrinsics and the poses
    to keep (see the module docstring). COLMAP's C++ log goes wherever file descriptor
    2 goes: wrap the call in :func:`mum.native_stderr.native_stderr_to` to keep it off a terminal."""
    pycolmap = import_pycolmap()

    say = say or (lambda _m: None)
    pycolmap.logging.minloglevel = max(int(pycolmap.logging.minloglevel), 2)  # COLMAP's INFO lines: errors only
    S = len(arrays)
    seconds: dict[str, float] = {}
    with scratch_folder("mum-sfm-") as tmp:
        image_dir = tmp / "images"
        image_dir.mkdir()
        t0 = time.perf_counter()
        names, transforms = _write_images(arrays, image_dir, options.max_image_size)
        database = tmp / "database.db"
        say(f"sfm: SIFT features of {S} views")
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = options.camera_model
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.max_image_size = options.max_image_size
        extraction.num_threads = options.num_threads
        extraction.sift.first_octave = options.sift_first_octave
        pycolmap.Database.open(str(database)).close()
        for group, single in _camera_groups(arrays, known):
            mode = pycolmap.CameraMode.SINGLE if single else pycolmap.CameraMode.PER_IMAGE
            # the images enter the database in input order before extraction: extraction on several threads
            # would number them in the order they finish, and matching and mapping depend on the numbering
            pycolmap.import_images(database, image_dir, mode, image_names=[names[i] for i in group], options=reader)
            pycolmap.extract_features(
                database, image_dir, image_names=[names[i] for i in group], reader_options=reader,
                extraction_options=extraction,
                camera_mode=mode, device=pycolmap.Device.cpu,
            )
        guesses = {}
        if options.network_focal_prior:
            guesses = _set_focal_priors(database, names, transforms, np.asarray(focal_prior, dtype=np.float64))
        constant, kept_priors = _set_known_cameras(database, names, transforms, known)
        guesses = {c: params for c, params in guesses.items() if c not in kept_priors}  # given and EXIF stay
        fixed = {} if known is None else {names[i]: known.cam_from_world[i] for i in np.nonzero(known.posed)[0]}
        if len(fixed) < 2:
            fixed = {}  # one pose fixes no scale: SfM maps freely and is aligned to it afterwards
        seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        matching = _matching()
        if pairs is None:
            say(f"sfm: matching all {S * (S - 1) // 2} pairs")
            pycolmap.match_exhaustive(database, matching, verification_options=_verification(options),
                                      device=pycolmap.Device.cpu)
            pairs_matched = S * (S - 1) // 2
        else:
            say(f"sfm: matching {len(pairs)} network-guided pairs (of {S * (S - 1) // 2})")
            _match_pairs(pycolmap, database, tmp / "pairs.txt", names, pairs, matching, _verification(options))
            pairs_matched = len(pairs)
        pairs_verified = _verified_pairs(pycolmap, database)
        seconds["matching"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say(f"sfm: incremental mapping ({pairs_verified} verified pairs)")
        siblings: dict[int, tuple] = {}  # id(model) → (model, the other models of its mapping)

        def mapping(database: Path, out: Path, relaxed: bool):
            if fixed:
                return _map_from_poses(pycolmap, database, image_dir, out, options, relaxed, S, fixed, constant)
            model, others = _map(pycolmap, database, image_dir, out, options, relaxed=relaxed, constant=constant)
            if model is not None:
                siblings[id(model)] = (model, others)
            return model

        best = mapping(database, tmp / "mapping", relaxed=False)
        seconds["mapping"] = time.perf_counter() - t0
        relaxed = False
        initial_focal = "network" if guesses else "colmap"
        if guesses and S >= 2 and (best is None or best.num_reg_images() < S):
            # a wrong network focal length can cost views: COLMAP's own guess on the same matches, the better kept
            t0 = time.perf_counter()
            say("sfm: views missing; mapping again from COLMAP's own focal length guess")
            colmap_database = tmp / "database_colmap_focal.db"
            _with_colmap_focal(pycolmap, database, colmap_database, guesses, options)
            again = mapping(colmap_database, tmp / "mapping_colmap_focal", relaxed=False)
            if _better(again, best):
                best, database, initial_focal = again, colmap_database, "colmap"
                pairs_verified = _verified_pairs(pycolmap, database)
            seconds["focal_fallback"] = time.perf_counter() - t0
        registered = set() if best is None else {im.name for im in best.images.values() if im.has_pose}
        missing = [k for k, n in enumerate(names) if n not in registered]
        if options.guided_matching and missing and S >= 2:
            t0 = time.perf_counter()
            all_pairs = pairs if pairs is not None else [(i, j) for i in range(S) for j in range(i + 1, S)]
            # small scenes: all pairs, not only the missing views': registering a view needs its matches to reach
            # points that are triangulated, and guided matching of the other pairs adds those (demo/buddha:
            # only-their-pairs registers neither of its two hard views, all pairs registers both); large ones:
            # the missing views' pairs (guided matching of every pair of 100 views costs minutes)
            lost = set(missing)
            redo = list(all_pairs) if S <= options.rematch_all_up_to else [p for p in all_pairs if lost & set(p)]
            say(f"sfm: {len(missing)} view(s) not registered: guided matching of {len(redo)} pairs, mapping again")
            _drop_focal_priors(pycolmap, database, kept_priors)  # a wrong network focal may be why they failed
            _match_pairs(pycolmap, database, tmp / "pairs_guided.txt", names, redo, _matching(guided=True),
                         _verification(options), replace=True)
            pairs_verified = _verified_pairs(pycolmap, database)
            seconds["guided_matching"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = mapping(database, tmp / "mapping_guided", relaxed=False)
            if _better(again, best):
                best = again
            seconds["mapping"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        registered_now = 0 if best is None else best.num_reg_images()
        if registered_now < S and S >= 2 and pairs_verified > 0 and (S <= options.rematch_all_up_to or 2 * registered_now < S):
            say("sfm: views still missing; mapping again with relaxed thresholds")
            again = mapping(database, tmp / "mapping_relaxed", relaxed=True)
            if _better(again, best):
                best, relaxed = again, True
        dropped = False
        if best is not None and (distortion := corner_distortion(best)) > options.max_corner_distortion:
            say(f"sfm: the lens distortion moves the image corners by {100 * distortion:.0f} %; "
                "mapping again without it")
            pinhole_database = tmp / "database_pinhole.db"
            _without_distortion(pycolmap, database, pinhole_database)
            again = mapping(pinhole_database, tmp / "mapping_pinhole", relaxed=relaxed)
            half = again is not None and 2 * again.num_reg_images() >= best.num_reg_images()
            if (options.pinhole_when_implausible and half) or _better(again, best):
                best, database, dropped = again, pinhole_database, True
        if (best is None or best.num_reg_images() < 2) and S == 2 and pairs_verified > 0 and not fixed:
            say("sfm: mapping refused the two views; relative pose from their two-view geometry")
            best, relaxed = _two_view_model(pycolmap, database, image_dir, tmp / "two_view", options), True
        seconds["mapping"] += time.perf_counter() - t0
        kept, others = siblings.get(id(best), (None, []))
        others = others if kept is best else []
        result = _result(best, names, transforms, np.asarray(focal_prior, dtype=np.float64), options,
                         pairs_matched, pairs_verified, seconds, relaxed)
        result.other_models = _other_models(others, result.registered, names, transforms, result.intrinsics)
    result.initial_focal = initial_focal
    result.corner_distortion = 0.0 if best is None else corner_distortion(best)
    result.distortion_dropped = dropped
    return result


def _result(rec, names, transforms, focal_prior, options, pairs_matched, pairs_verified, seconds, relaxed) -> SfmResult:
    S = len(names)
    K = np.stack([centred_intrinsics(f, *tf.original_size) for f, tf in zip(focal_prior, transforms)])
    registered, cams, K, points, colors, observations = _model_arrays(rec, names, transforms, K)
    return SfmResult(registered, cams, K, points, colors, observations, pairs_matched, pairs_verified, seconds, relaxed)


def _model_arrays(rec, names: list[str], transforms: list[ViewTransform], K: np.ndarray):
    """``rec``'s views as arrays over all ``S`` inputs: registered ``[S]``, cam_from_world ``[S, 4, 4]`` (NaN where
    not registered), intrinsics ``[S, 3, 3]`` (``K``'s where not registered), points ``[P, 3]``, colours and
    observations (original pixels, centre-based)."""
    S = len(names)
    registered, cams, K = np.zeros(S, bool), np.full((S, 4, 4), np.nan), K.copy()
    empty = (np.zeros(0, np.int64), np.zeros((0, 2)))
    observations = [empty] * S
    if rec is None:
        return registered, cams, K, np.zeros((0, 3)), np.zeros((0, 3), np.uint8), observations
    point_ids = list(rec.points3D.keys())
    index = {pid: k for k, pid in enumerate(point_ids)}
    points = np.array([rec.points3D[p].xyz for p in point_ids], dtype=np.float64).reshape(-1, 3)
    colors = np.array([rec.points3D[p].color for p in point_ids], dtype=np.uint8).reshape(-1, 3)
    for image in rec.images.values():
        if not image.has_pose:
            continue
        i = names.index(image.name)
        registered[i] = True
        cams[i] = np.eye(4)
        cams[i, :3, :] = image.cam_from_world().matrix()
        camera = rec.cameras[image.camera_id]
        K[i] = _colmap_to_K(camera.params, camera.model.name, transforms[i])
        obs = [(index[p.point3D_id], p.xy) for p in image.points2D if p.has_point3D()]
        if obs:
            idx = np.array([o[0] for o in obs], dtype=np.int64)
            uv = transforms[i].points_to_original(np.array([o[1] for o in obs], dtype=np.float64) - 0.5)
            observations[i] = (idx, uv)
    return registered, cams, K, points, colors, observations


def _other_models(models, taken: np.ndarray, names: list[str], transforms: list[ViewTransform],
                  K: np.ndarray) -> list[OtherModel]:
    """The mapper's other ``models`` (largest first) as :class:`OtherModel`, each kept only when none of its views
    is ``taken`` ``[S]`` (by the kept model or a larger other model): a model that shares views with the kept one
    yet was not merged into it disagrees with it. ``K`` ``[S, 3, 3]``: any intrinsics of the right shape (a
    model's own replace them on the views it keeps)."""
    taken = taken.copy()
    out = []
    for rec in models:
        registered, cams, K_model, points, colors, observations = _model_arrays(rec, names, transforms, K)
        if registered.sum() < 2 or (registered & taken).any():
            continue
        views = np.nonzero(registered)[0]
        out.append(OtherModel(views, cams[views], K_model[views], points, colors, [observations[i] for i in views]))
        taken |= registered
    return out


def reprojection_errors(cam_from_world: np.ndarray, K: np.ndarray, points: np.ndarray,
                        observations: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Pixel distances between every observation and its point projected with the given cameras
    (``[S, 4, 4]``, ``[S, 3, 3]`` original pixels): the figure that describes the exported cameras."""
    import torch

    from mum.geometry import camera_points_to_pixels, world_points_to_camera_points

    errors = []
    for i, (idx, uv) in enumerate(observations):
        if len(idx) == 0 or not np.isfinite(cam_from_world[i]).all():
            continue
        x = world_points_to_camera_points(torch.from_numpy(points[idx]), torch.from_numpy(cam_from_world[i, :3]))
        pixels = camera_points_to_pixels(x, torch.from_numpy(K[i])).numpy()
        errors.append(np.linalg.norm(pixels - uv, axis=1))
    return np.concatenate(errors) if errors else np.zeros(0)
