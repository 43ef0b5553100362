"""The typed result of :meth:`heads.model.Reconstructor.predict`."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Union

import numpy as np
import torch

Array = Union[torch.Tensor, np.ndarray]


@dataclass
class Prediction:
    """One forward pass over ``B`` scenes of ``S`` views at network resolution ``H × W``.

    Conventions (``docs/architecture.md``): world = first camera; extrinsics camera-from-world OpenCV ``[R | t]``;
    intrinsics in pixels of the network input (principal point at ``(W/2, H/2)``); depth is camera z;
    confidences are ``1 + exp(x)`` (> 1); values are up to one global scale per scene.
    """

    extrinsics: Array  # [B, S, 3, 4]
    intrinsics: Array  # [B, S, 3, 3]
    depth: Array  # [B, S, H, W, 1]
    depth_conf: Array  # [B, S, H, W]
    world_points: Array  # [B, S, H, W, 3]  (point head)
    world_points_conf: Array  # [B, S, H, W]
    pose_enc: Array  # [B, S, 9]  [t, quaternion xyzw, fov_h, fov_w]
    images: Array  # [B, S, H, W, 3] RGB in [0, 1] (the network input: point colours)
    descriptors: Array  # [B, S, C] pooled patch tokens, L2-normalised (image retrieval)

    @property
    def batched(self) -> bool:
        """True while the leading batch axis is present (before :meth:`squeeze_batch`)."""
        return self.pose_enc.ndim == 3

    def numpy(self) -> "Prediction":
        """A copy with every field a float32 numpy array on the CPU."""
        def to_np(x: Array) -> np.ndarray:
            if isinstance(x, np.ndarray):
                return x.astype(np.float32, copy=False)
            return x.detach().float().cpu().numpy()

        return Prediction(**{f.name: to_np(getattr(self, f.name)) for f in fields(self)})

    def squeeze_batch(self) -> "Prediction":
        """Drop the batch axis of a single-scene prediction (``[1, S, ...]`` → ``[S, ...]``)."""
        if not self.batched:
            return self
        if self.pose_enc.shape[0] != 1:
            raise ValueError(f"squeeze_batch needs one scene, this prediction holds {self.pose_enc.shape[0]}")
        return replace(self, **{f.name: getattr(self, f.name)[0] for f in fields(self)})

    def scene(self, index: int) -> "Prediction":
        """Scene ``index`` of a batched prediction, without the batch axis."""
        if not self.batched:
            raise ValueError("this prediction has no batch axis")
        return replace(self, **{f.name: getattr(self, f.name)[index] for f in fields(self)})
