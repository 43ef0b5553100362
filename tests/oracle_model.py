"""A stand-in network that knows the answer: for the views of a synthetic scene it predicts their exact cameras
and depth, in a frame and at a scale of its own per call (the first view of the call is the world, distances
multiplied by a random factor), as a feedforward network does. With it, tests of the machinery around the
network (chunk joins, loop closures, the pose graph) can demand exact results.

Views are recognised by their pixels, so the images the pipeline passes must be the scene's own at the
network size (render the scene at a size that is a multiple of the patch size and run at that long side)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch


class OracleModel:
    """``predict(images [S, 3, H, W])`` → the ``heads.Prediction`` fields the pipeline reads, exact up to one
    similarity per call. ``descriptors``: the viewing direction's azimuth as ``[cos, sin]`` (views looking the
    same way are alike, as retrieval descriptors of the same place are). ``calls`` lists each call's views."""

    name = "oracle"
    patch_size = 16

    def __init__(self, scene, seed: int = 0) -> None:
        H, W = scene.images[0].shape[:2]
        assert H % self.patch_size == 0 and W % self.patch_size == 0, "render the scene at a multiple of 16 px"
        self.cfg = SimpleNamespace(image_size=max(H, W))
        self.images = torch.from_numpy(np.stack(scene.images)).permute(0, 3, 1, 2).float() / 255.0
        E = np.tile(np.eye(4), (len(scene.images), 1, 1))
        E[:, :3] = scene.extrinsics
        self.cam_from_world = E
        self.intrinsics = np.asarray(scene.intrinsics, np.float64)
        self.depth = np.stack(scene.depths).astype(np.float64)
        forward = E[:, 2, :3]  # the optical axis in the world (z up)
        azimuth = np.arctan2(forward[:, 1], forward[:, 0])
        self.descriptors = np.stack([np.cos(azimuth), np.sin(azimuth)], axis=1)
        self.rng = np.random.default_rng(seed)
        self.calls: list[list[int]] = []

    def identify(self, images: torch.Tensor) -> list[int]:
        diff = (images[:, None].float() - self.images[None]).abs().mean(dim=(2, 3, 4))
        best = diff.argmin(dim=1)
        assert float(diff.min(dim=1).values.max()) < 2e-3, "an input is none of the scene's views"
        return best.tolist()

    def predict(self, images: torch.Tensor, chunk_size: int | None = None, **options):
        """``options`` (``output_device``, …): accepted and ignored, as the answer is computed on the CPU."""
        from mum.geometry import depth_to_world_points

        idx = self.identify(images)
        self.calls.append(idx)
        scale = float(self.rng.uniform(0.5, 2.0))
        E = self.cam_from_world[idx] @ np.linalg.inv(self.cam_from_world[idx[0]])  # world = the call's first view
        E[:, :3, 3] *= scale
        depth = self.depth[idx] * scale
        K = self.intrinsics[idx]
        points = depth_to_world_points(torch.from_numpy(depth), torch.from_numpy(E[:, :3]), torch.from_numpy(K))
        S, H, W = depth.shape
        conf = torch.full((1, S, H, W), 5.0)
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)[None]  # noqa: E731
        return SimpleNamespace(
            extrinsics=f32(E[:, :3]), intrinsics=f32(K), images=images[None], depth=f32(depth)[..., None],
            depth_conf=conf, world_points=f32(points.numpy()), world_points_conf=conf.clone(),
            descriptors=f32(self.descriptors[idx]),
        )
