"""From user input to a :class:`~app.engine.reconstruction.Reconstruction`: preprocess, predict, then (unless
``fast``) cameras from SfM and dense depth fitted to them.

Shared by the command-line tool, the web app and the benchmarks (one implementation for all).

Default path (:func:`reconstruct_arrays`):

1. the network predicts cameras, depth, confidence and a retrieval descriptor per view (one pass);
2. SfM from scratch (:mod:`app.engine.sfm`): SIFT, matching of all pairs up to ``exhaustive_up_to`` views and of the
   network-guided pairs beyond (:mod:`app.engine.pair_selection`), incremental mapping with the network's focal
   length as the initial one;
3. views SfM did not register get the network's camera placed by a similarity fitted on the registered ones
   (:mod:`app.engine.camera_fusion`); with fewer than two registered views the network's cameras are used alone
   (one warning line);
4. the dense stage (``options.dense``, :mod:`app.engine.dense_options`): each view's network depth is fitted to the
   SfM points it sees (:mod:`app.engine.dense_fit`); by default it is then the prior of multi-view stereo on the SfM
   cameras (:mod:`app.engine.multiview_stereo`), or (``fitted``) upsampled and kept where another view's depth agrees;
   the SfM points join the cloud.

``fast`` stops after step 1.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from app.engine.runtime import is_out_of_memory
from app.engine.known_cameras import KnownCameras
from app.engine.reconstruction import FAST_CONF_PERCENTILE, Reconstruction
from app.engine.options import PipelineOptions
from mum.errors import UserError
from mum.io import ViewTransform, preprocess


def prediction_to_reconstruction(pred: Any, names: Sequence[str], transforms: Sequence[ViewTransform]) -> Reconstruction:
    """Convert one scene's prediction (``heads.Prediction`` with batch 1) to original-image conventions."""
    def arr(t: torch.Tensor) -> np.ndarray:
        t = t.detach().float().cpu()
        return (t[0] if t.ndim and t.shape[0] == 1 else t).numpy()

    extr = arr(pred.extrinsics).astype(np.float64)  # [S, 3, 4]
    S = extr.shape[0]
    cam_from_world = np.tile(np.eye(4), (S, 1, 1))
    cam_from_world[:, :3, :] = extr
    K_orig = np.stack([tf.intrinsics_to_original(K) for tf, K in zip(transforms, arr(pred.intrinsics).astype(np.float64))])
    # square pixels: one focal length per camera (the network predicts equal horizontal and vertical fields of
    # view, which gives fx != fy on non-square images); the geometric mean of the two
    focal = np.sqrt(K_orig[:, 0, 0] * K_orig[:, 1, 1])
    K_orig[:, 0, 0] = K_orig[:, 1, 1] = focal
    images = arr(pred.images)  # [S, 3, H, W] or [S, H, W, 3]
    if images.shape[1] == 3 and images.shape[-1] != 3:
        images = images.transpose(0, 2, 3, 1)
    return Reconstruction(
        names=list(names),
        image_sizes=[tf.original_size for tf in transforms],
        cam_from_world=cam_from_world,
        intrinsics=K_orig,
        depth=arr(pred.depth)[..., 0],
        depth_conf=arr(pred.depth_conf),
        world_points=arr(pred.world_points),
        world_points_conf=arr(pred.world_points_conf),
        colors=np.clip(images * 255 + 0.5, 0, 255).astype(np.uint8),
        transforms=list(transforms),
    )


def predict_with_oom_fallback(model: Any, images: torch.Tensor, chunk_size: Optional[int], say: Callable[[str], None]):
    """``model.predict`` that, on out-of-memory, frees the cache and retries with half the frame chunk down to 1
    (memory of the encoder and DPT heads is linear in the chunk), telling the user each time; gives a
    :class:`UserError` when even one frame per chunk does not fit (global attention over all frames remains)."""
    from heads.model import DEFAULT_CHUNK_SIZE

    chunk = min(chunk_size or DEFAULT_CHUNK_SIZE, images.shape[-4])
    while True:
        try:  # the frames go to the model's device and the dense maps come back to the CPU a chunk at a time
            return model.predict(images, chunk_size=chunk, output_device="cpu")
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if chunk <= 1:
                raise UserError(
                    f"out of memory with {images.shape[-4]} views at {images.shape[-1]}x{images.shape[-2]} px even "
                    "one frame per chunk: use fewer views (--max-frames) or a smaller --size"
                ) from None
            chunk = max(1, chunk // 2)
            say(f"out of memory: retrying with {chunk} frame(s) per chunk")


def reconstruct_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    long_side: Optional[int] = None,
    device: str = "cpu",
    chunk_size: Optional[int] = None,
    on_stage: Optional[Callable[[str], None]] = None,
    options: PipelineOptions = PipelineOptions(),
    warn: Optional[Callable[[str], None]] = None,
    known: Optional[KnownCameras] = None,
) -> Reconstruction:
    """Reconstruct ``uint8`` RGB views (original size) with ``model`` (a ``heads.Reconstructor``) and, unless
    ``options.fast``, SfM and dense fitting; returns the scene in user conventions. ``on_stage``: progress
    lines; ``warn``: the one warning line when the cameras fall back to the network alone; ``known``: given or
    EXIF intrinsics and poses to keep (:mod:`app.engine.known_cameras`)."""
    say = on_stage or (lambda _msg: None)
    recon, transforms, descriptors = predict_arrays(model, names, arrays, long_side, device, chunk_size, say)
    if known is not None:
        apply_known_intrinsics(recon, known)
    if options.fast:
        if known is not None and known.posed.any():
            place_on_given_poses(recon, known, say)
        if options.fast_consistency:
            recon.meta["consistency"] = network_consistency(recon, options)
        return recon
    from app.engine.geometric_reconstruction import add_geometry

    add_geometry(recon, arrays, transforms, descriptors, options, say, warn or say, known=known)
    return recon


def apply_known_intrinsics(recon: Reconstruction, known: KnownCameras) -> None:
    """Given and EXIF intrinsics replace the network's (depth is then unprojected with them)."""
    sources = recon.intrinsics_origins()
    for i, source in enumerate(known.intrinsics_source):
        if source:
            recon.intrinsics[i] = known.K[i]
            sources[i] = source
    recon.intrinsics_sources = sources


def place_on_given_poses(recon: Reconstruction, known: KnownCameras, say: Callable[[str], None]) -> None:
    """``fast`` with poses kept: the given poses exactly; the network's cameras of the other views, its depth
    and its point map brought into the given frame and scale by the similarity that maps the network's cameras
    of the posed views onto the given ones."""
    from app.engine.camera_fusion import apply, fill_unregistered

    posed = known.posed
    cams, _, sim = fill_unregistered(recon.cam_from_world, np.nan_to_num(known.cam_from_world), posed)
    recon.cam_from_world = cams
    recon.camera_sources = ["given" if p else "network" for p in posed]
    recon.depth = (recon.depth * sim.scale).astype(np.float32)
    recon.world_points = apply(sim, recon.world_points.astype(np.float64)).astype(np.float32)
    recon.meta["world"] = "given"
    say(f"cameras: {int(posed.sum())} given pose(s) kept; network depth scaled by {sim.scale:.4g} to them")


def network_consistency(recon: Reconstruction, options: PipelineOptions) -> dict:
    """The multi-view disagreement of the network's own depth and cameras: over all pixels, and over the
    pixels that ``--fast``'s cloud keeps (confidence at or above its ``FAST_CONF_PERCENTILE`` percentile)."""
    from app.engine.dense_fit import depth_agreement, overlap_neighbours

    depth = recon.depth.astype(np.float64)
    K, cams = recon.network_intrinsics, recon.cam_from_world
    neighbours = overlap_neighbours(depth, K, cams, options.consistency_neighbours)
    every = depth_agreement(depth, K, cams, neighbours, options.consistency_tolerance, step=2)
    kept = recon.depth_conf >= np.percentile(recon.depth_conf, FAST_CONF_PERCENTILE)
    cloud = depth_agreement(depth, K, cams, neighbours, options.consistency_tolerance, mask=kept, step=2)
    return {"median_depth_disagreement": every.median_disagreement,
            "cloud_median_depth_disagreement": cloud.median_disagreement, "view_pairs": every.pairs,
            "pixels_kept": round(float(kept.mean()), 4)}


def predict_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    long_side: Optional[int],
    device: str,
    chunk_size: Optional[int],
    say: Callable[[str], None],
    aspect: Optional[float] = None,
) -> tuple[Reconstruction, list[ViewTransform], np.ndarray]:
    """One network pass: the feedforward reconstruction, the view transforms and the retrieval descriptors
    ``[S, C]``. ``aspect``: the network input's width / height (default: the views' median)."""
    size = long_side or model.cfg.image_size
    images, transforms = preprocess(arrays, long_side=size, patch_size=model.patch_size, aspect=aspect)
    H, W = images.shape[-2:]
    say(f"preprocessed {len(arrays)} views to {W} × {H} px" + (f" (--size {size} → a multiple of {model.patch_size})"
                                                               if max(H, W) != size else ""))
    say(f"running the model on {device}")
    t0 = time.perf_counter()
    pred = predict_with_oom_fallback(model, images, chunk_size, say)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    recon = prediction_to_reconstruction(pred, names, transforms)
    recon.meta.update(inference_s=elapsed, device=device, network_size=tuple(images.shape[-1:-3:-1]))
    descriptors = pred.descriptors[0].detach().float().cpu().numpy()
    return recon, transforms, descriptors
