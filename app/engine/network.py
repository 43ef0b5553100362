"""The network stage: one pass of the model over the views (frames in chunks, halved on out-of-memory), its
prediction in the user's conventions (a :class:`~app.engine.reconstruction.Reconstruction` in original-image
pixels, square pixels) and the views' retrieval descriptors."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from app.engine.options import NetworkOptions
from app.engine.reconstruction import Reconstruction
from app.engine.runtime import is_out_of_memory
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


def predict_arrays(
    model: Any,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    network: NetworkOptions,
    say: Callable[[str], None],
    aspect: Optional[float] = None,
) -> tuple[Reconstruction, list[ViewTransform], np.ndarray]:
    """One network pass of ``model`` over ``arrays`` (``uint8`` RGB, original size): the feedforward
    reconstruction, the view transforms and the retrieval descriptors ``[S, C]``. ``aspect``: the network
    input's width / height (default: the views' median)."""
    device = network.device
    size = network.long_side or model.cfg.image_size
    images, transforms = preprocess(arrays, long_side=size, patch_size=model.patch_size, aspect=aspect)
    H, W = images.shape[-2:]
    say(f"preprocessed {len(arrays)} views to {W} × {H} px" + (f" (--size {size} → a multiple of {model.patch_size})"
                                                               if max(H, W) != size else ""))
    say(f"running the model on {device}")
    t0 = time.perf_counter()
    pred = predict_with_oom_fallback(model, images, network.chunk_size, say)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    recon = prediction_to_reconstruction(pred, names, transforms)
    recon.meta.update(inference_s=elapsed, device=device, network_size=tuple(images.shape[-1:-3:-1]))
    descriptors = pred.descriptors[0].detach().float().cpu().numpy()
    return recon, transforms, descriptors
