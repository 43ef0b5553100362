"""Cameras from feature matching and structure-from-motion (pycolmap on the CPU), from scratch.

SIFT features on every view (downscaled to ``max_image_size``), matching of all pairs or of the pairs given
(network-guided, see :mod:`app.pair_selection`), geometric verification and COLMAP's incremental mapping. The
network contributes the initial focal length of every camera (COLMAP's own guess is ``1.2 × max(w, h)``), which
bundle adjustment then refines. When the first mapping leaves views out, the pairs are matched again with
guided matching and mapped again; when views are still missing, mapping runs once more with relaxed thresholds
(15 inliers for the initial pair and for registration: two photos, few matches); the model that registers
most views is kept.

Known cameras (:mod:`app.known_cameras`): a view with given intrinsics gets a PINHOLE camera with exactly those
(held constant by bundle adjustment), a view with an EXIF focal length that focal length as a prior (refined,
as COLMAP does); views with identical known intrinsics share a camera. With poses kept (``--fix-poses``) and at
least two views posed, the points are triangulated from the given poses and the other views registered to
them by incremental mapping with those poses fixed: the result is in the given world frame and scale.

Conventions of the result: OpenCV camera-from-world, intrinsics in pixels of the *original* images with pixel
centres at integer coordinates (COLMAP's are at half-integers; converted here), one focal length per camera.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mum.geometry import centred_intrinsics
from mum.pycolmap_import import import_pycolmap
from mum.io import ViewTransform, warp_view

if TYPE_CHECKING:
    from app.known_cameras import KnownCameras


@dataclass(frozen=True)
class SfmOptions:
    """``max_image_size``: longer side of the images SIFT sees (COLMAP's default is 3200; 1600 keeps SfM on
    demo/buddha at 2736 × 1540 as accurate and twice as fast). ``guided_matching``: when the first mapping
    leaves views unregistered, the pairs are matched again along their verified epipolar geometry (more
    inliers: this registers the two hardest views of demo/buddha) and mapping runs again; it costs about 4×
    the plain matching, so scenes that register at once do not pay it; beyond ``rematch_all_up_to`` views only
    the unregistered views' pairs are matched again, and the relaxed mapping runs only when fewer than half
    the views are registered.
    ``camera_model``: COLMAP's default ``SIMPLE_RADIAL`` (one focal length, one radial distortion term; on
    demo/sacre_coeur AUC@30 99.6 against 98.9 with ``SIMPLE_PINHOLE``). The exports are pinhole: the focal
    length and principal point are kept, the small distortion term is dropped, and the reported reprojection
    error is measured with the exported pinhole cameras."""

    max_image_size: int = 1600
    guided_matching: bool = True
    camera_model: str = "SIMPLE_RADIAL"
    num_threads: int = -1
    relaxed_min_inliers: int = 15
    random_seed: int = 0
    sift_first_octave: int = -1
    init_min_tri_angle: float = 16.0  # degrees (COLMAP's default); the sequence path's keyframes move forward
    mapping_seconds_per_view: float = 1.5
    rematch_all_up_to: int = 30


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


def _set_focal_priors(database: Path, names: list[str], transforms: list[ViewTransform], focal: np.ndarray) -> None:
    """Initial focal length of a camera that several views share: the median of ``focal`` ``[S]`` (original
    pixels) over them, marked as a prior (verification then estimates essential matrices, not fundamental
    ones: matching of demo/tum_freiburg takes 1.7 s instead of 3.2 s; the guided second pass drops the mark). A camera of one view keeps COLMAP's guess (``1.2 × max(w, h)``): one network
    prediction is too noisy there (on demo/sacre_coeur it is 0.2–1.3× the reference, median 0.65×, and
    mapping registered less accurately with it), while the median over a shared camera's views is closer to
    the reference than COLMAP's guess (demo/tum_freiburg 1.11× vs 1.45×, demo/buddha 1.41× vs 1.76×)."""
    pycolmap = import_pycolmap()

    with pycolmap.Database.open(str(database)) as db:
        by_camera: dict[int, list[int]] = {}
        for image in db.read_all_images():
            by_camera.setdefault(image.camera_id, []).append(names.index(image.name))
        for camera_id, views in by_camera.items():
            if len(views) < 2:
                continue
            camera = db.read_camera(camera_id)
            tf = transforms[views[0]]
            f = float(np.median(focal[views])) * np.sqrt(tf.sx * tf.sy)
            params = list(camera.params)
            params[0] = f
            if camera.model.name == "PINHOLE":
                params[1] = f
            camera.params = params
            camera.has_prior_focal_length = True  # calibrated verification (E, not F): 2x faster matching
            db.update_camera(camera)


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
    triangulated = pycolmap.triangulate_points(rec, database, image_dir, out, options=triangulation)
    if triangulated.num_points3D() < options.relaxed_min_inliers:
        return None
    adjustment = pycolmap.BundleAdjustmentOptions()
    adjustment.refine_focal_length = False
    adjustment.refine_extra_params = False
    adjustment.print_summary = False
    pycolmap.bundle_adjustment(triangulated, adjustment)
    return triangulated


def _mapping_options(pycolmap, options: SfmOptions, relaxed: bool, num_views: int, constant: set[int]):
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.constant_cameras = set(constant)  # given intrinsics: held by every bundle adjustment
    mapping.num_threads = options.num_threads
    mapping.min_model_size = 2
    mapping.random_seed = options.random_seed  # the same photos give the same cameras
    # a bound on a hopeless mapping (repetitive textures: minutes of bundle adjustment on wrong tracks); the
    # partial model so far is returned
    mapping.max_runtime_seconds = int(options.mapping_seconds_per_view * max(10, num_views))
    mapping.mapper.init_min_tri_angle = options.init_min_tri_angle
    if relaxed:
        n = options.relaxed_min_inliers
        mapping.min_num_matches = n
        mapping.mapper.init_min_num_inliers = n
        mapping.mapper.abs_pose_min_num_inliers = n
        mapping.mapper.init_min_tri_angle = 4.0
    return mapping


def _map(pycolmap, database: Path, image_dir: Path, out: Path, options: SfmOptions, relaxed: bool, num_views: int,
         constant: set[int] = frozenset()):
    out.mkdir()
    mapping = _mapping_options(pycolmap, options, relaxed, num_views, constant)
    models = pycolmap.incremental_mapping(database, image_dir, out, mapping)
    return max(models.values(), key=lambda r: r.num_reg_images(), default=None)


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
    mapping = _mapping_options(pycolmap, options, relaxed, num_views, constant)
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
    from app.camera_fusion import fit_similarity

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
    with tempfile.TemporaryDirectory(prefix="mum-sfm-") as tmp:
        tmp = Path(tmp)
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
        for group, single in _camera_groups(arrays, known):
            pycolmap.extract_features(
                database, image_dir, image_names=[names[i] for i in group], reader_options=reader,
                extraction_options=extraction,
                camera_mode=pycolmap.CameraMode.SINGLE if single else pycolmap.CameraMode.PER_IMAGE,
                device=pycolmap.Device.cpu,
            )
        _set_focal_priors(database, names, transforms, np.asarray(focal_prior, dtype=np.float64))
        constant, kept_priors = _set_known_cameras(database, names, transforms, known)
        fixed = {} if known is None else {names[i]: known.cam_from_world[i] for i in np.nonzero(known.posed)[0]}
        if len(fixed) < 2:
            fixed = {}  # one pose fixes no scale: SfM maps freely and is aligned to it afterwards
        seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = options.num_threads
        if pairs is None:
            say(f"sfm: matching all {S * (S - 1) // 2} pairs")
            pycolmap.match_exhaustive(database, matching, verification_options=_verification(options),
                                      device=pycolmap.Device.cpu)
            pairs_matched = S * (S - 1) // 2
        else:
            say(f"sfm: matching {len(pairs)} network-guided pairs (of {S * (S - 1) // 2})")
            _match_pairs(pycolmap, database, tmp / "pairs.txt", names, pairs, matching, _verification(options))
            pairs_matched = len(pairs)
        with pycolmap.Database.open(str(database)) as db:
            pairs_verified = int(db.num_verified_image_pairs())
        seconds["matching"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say(f"sfm: incremental mapping ({pairs_verified} verified pairs)")
        def mapping(out: Path, relaxed: bool):
            if fixed:
                return _map_from_poses(pycolmap, database, image_dir, out, options, relaxed, S, fixed, constant)
            return _map(pycolmap, database, image_dir, out, options, relaxed=relaxed, num_views=S, constant=constant)

        best = mapping(tmp / "mapping", relaxed=False)
        seconds["mapping"] = time.perf_counter() - t0
        relaxed = False
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
            guided = pycolmap.FeatureMatchingOptions()
            guided.num_threads = options.num_threads
            guided.guided_matching = True
            _match_pairs(pycolmap, database, tmp / "pairs_guided.txt", names, redo, guided, _verification(options),
                         replace=True)
            with pycolmap.Database.open(str(database)) as db:
                pairs_verified = int(db.num_verified_image_pairs())
            seconds["guided_matching"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = mapping(tmp / "mapping_guided", relaxed=False)
            if again is not None and (best is None or again.num_reg_images() > best.num_reg_images()):
                best = again
            seconds["mapping"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        registered_now = 0 if best is None else best.num_reg_images()
        if registered_now < S and S >= 2 and pairs_verified > 0 and (S <= options.rematch_all_up_to or 2 * registered_now < S):
            say("sfm: views still missing; mapping again with relaxed thresholds")
            again = mapping(tmp / "mapping_relaxed", relaxed=True)
            if again is not None and (best is None or again.num_reg_images() > best.num_reg_images()):
                best, relaxed = again, True
        if (best is None or best.num_reg_images() < 2) and S == 2 and pairs_verified > 0 and not fixed:
            say("sfm: mapping refused the two views; relative pose from their two-view geometry")
            best, relaxed = _two_view_model(pycolmap, database, image_dir, tmp / "two_view", options), True
        seconds["mapping"] += time.perf_counter() - t0
    return _result(best, names, transforms, np.asarray(focal_prior, dtype=np.float64), options,
                   pairs_matched, pairs_verified, seconds, relaxed)


def _result(rec, names, transforms, focal_prior, options, pairs_matched, pairs_verified, seconds, relaxed) -> SfmResult:
    S = len(names)
    registered = np.zeros(S, bool)
    cams = np.full((S, 4, 4), np.nan)
    K = np.stack([centred_intrinsics(f, *tf.original_size) for f, tf in zip(focal_prior, transforms)])
    empty = (np.zeros(0, np.int64), np.zeros((0, 2)))
    if rec is None:
        return SfmResult(registered, cams, K, np.zeros((0, 3)), np.zeros((0, 3), np.uint8), [empty] * S,
                         pairs_matched, pairs_verified, seconds, relaxed)
    point_ids = list(rec.points3D.keys())
    index = {pid: k for k, pid in enumerate(point_ids)}
    points = np.array([rec.points3D[p].xyz for p in point_ids], dtype=np.float64).reshape(-1, 3)
    colors = np.array([rec.points3D[p].color for p in point_ids], dtype=np.uint8).reshape(-1, 3)
    observations = [empty] * S
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
    return SfmResult(registered, cams, K, points, colors, observations, pairs_matched, pairs_verified, seconds, relaxed)


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
