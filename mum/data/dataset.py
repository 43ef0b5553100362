"""PyTorch datasets of multi-view samples and a batch sampler that varies the view count and resolution.

A sample is a dict (tensors are CPU, float32 unless said):

==================  ==================  ===========================================================
key                 shape               meaning
==================  ==================  ===========================================================
``images``          ``[S, 3, H, W]``    RGB in [0, 1]
``depths``          ``[S, H, W]``       z-depth in the camera, 0 where unknown (normalised, see below)
``valid_masks``     ``[S, H, W]`` bool  where depth/points are ground truth
``world_points``    ``[S, H, W, 3]``    points in the first camera's frame (normalised)
``extrinsics``      ``[S, 3, 4]``       camera-from-first-camera, OpenCV axes; view 0 is ``[I | 0]``
``intrinsics``      ``[S, 3, 3]``       pixels of the returned images
``scale``           ``[]``              the factor divided out (mean distance of valid points to the origin)
``seed``/``index``  ``[]`` int64        the scene's seed (synthetic) and the sample index
``kind``            str                 scene kind ("room", "object", "terrain", or the reader's source)
==================  ==================  ===========================================================

With ``normalize=False`` nothing is divided (``scale`` = 1) and depths/points stay in metres.
A ``DataLoader`` collates these into ``[B, S, ...]`` when every sample of a batch shares ``S``, ``H``, ``W``:
use a fixed size, or :class:`MultiViewBatchSampler` (which also shards across ranks) as ``batch_sampler``.
Plain ``torch.utils.data.DistributedSampler`` works too, with the dataset's fixed size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

from mum.data.groundtruth import normalize_by_mean_distance, to_first_camera_frame
from mum.data.scene import Scene
from mum.data.synthetic import SPLITS, SyntheticConfig, generate_scene
from mum.data.views import crop_box, crop_resize
from mum.geometry import depth_to_world_points


class SampleKey(NamedTuple):
    """What a batch sampler asks for: sample ``index`` with ``num_views`` views of ``height × width``."""

    index: int
    num_views: int
    height: int
    width: int


def views_to_sample(images: Sequence[np.ndarray], intrinsics: np.ndarray, extrinsics: np.ndarray | None,
                    depths: Sequence[np.ndarray] | None, masks: Sequence[np.ndarray] | None, normalize: bool) -> dict:
    """Stack prepared views (already at the output size) into a sample dict (see the module docstring)."""
    S = len(images)
    H, W = images[0].shape[:2]
    img = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    if images[0].dtype == np.uint8 or img.max() > 1.5:
        img /= 255.0
    K = torch.from_numpy(np.asarray(intrinsics, np.float64)).float()
    ext = torch.eye(4, dtype=torch.float64)[:3].repeat(S, 1, 1) if extrinsics is None else torch.from_numpy(np.asarray(extrinsics, np.float64))
    ext = to_first_camera_frame(ext).float()
    depth = torch.zeros(S, H, W) if depths is None else torch.from_numpy(np.stack(depths)).float()
    valid = depth > 0
    if masks is not None:
        valid &= torch.from_numpy(np.stack(masks)).bool()
    depth = depth * valid
    points = depth_to_world_points(depth, ext, K) * valid[..., None]
    scale = torch.tensor(1.0)
    if normalize:
        ext, depth, points, scale = normalize_by_mean_distance(ext, depth, points, valid)
    return {"images": img.contiguous(), "depths": depth, "valid_masks": valid, "world_points": points,
            "extrinsics": ext, "intrinsics": K, "scale": scale.float()}


@functools.cache
def single_threaded() -> None:
    """Limit this process's BLAS (numpy's OpenBLAS) and OpenMP thread pools to one thread (once per process).
    DataLoader workers call it: the workers already use every core, and idle pool threads spin against
    them (measured on 2 cores: 15 % more CPU time per scene with the default pools). OpenCV's pool is left
    alone: resizing it in a forked worker deadlocks, and it costs little here."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _key(item, num_views: int, height: int, width: int) -> SampleKey:
    if isinstance(item, (tuple, list)):
        return SampleKey(*[int(x) for x in item])
    return SampleKey(int(item), num_views, height, width)


class SyntheticMultiViewDataset(Dataset):
    """Synthetic scenes rendered on the fly: sample ``i`` of ``split`` is scene ``SPLITS[split][offset + i]``.

    Args:
        split: "train", "val" or "test" (disjoint seed ranges, see :mod:`mum.data.synthetic`).
        length: number of samples (an epoch).
        num_views, height, width: default sample shape (a :class:`SampleKey` overrides them per item).
        config: what to generate (:class:`SyntheticConfig`).
        crop_scale: ``(lo, hi)``; when given, views are rendered ``1/lo`` larger and cropped at a random
            scale in the range and position, then resized (augmentation that moves the principal point).
        normalize: divide depths, points and translations by the mean distance of valid points.
    """

    def __init__(self, split: str = "train", length: int = 10_000, num_views: int = 8, height: int = 224, width: int = 224,
                 config: SyntheticConfig | None = None, crop_scale: tuple[float, float] | None = None,
                 normalize: bool = True, offset: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if offset + length > len(SPLITS[split]):
            raise ValueError(f"{split} has {len(SPLITS[split])} seeds; offset + length = {offset + length}")
        self.split, self.length, self.offset = split, length, offset
        self.num_views, self.height, self.width = num_views, height, width
        self.config = config or SyntheticConfig()
        self.crop_scale, self.normalize = crop_scale, normalize

    def __len__(self) -> int:
        return self.length

    def seed(self, index: int) -> int:
        return SPLITS[self.split][self.offset + index]

    def scene(self, key: int | SampleKey) -> Scene:
        """The rendered :class:`Scene` of a sample (before cropping and normalisation)."""
        k = _key(key, self.num_views, self.height, self.width)
        config = self.config
        if get_worker_info() is not None:
            single_threaded()
            if config.nthreads == 0:
                config = replace(config, nthreads=1)  # one ray-casting thread per DataLoader worker
        rh, rw = k.height, k.width
        if self.crop_scale is not None:
            rh, rw = math.ceil(k.height / self.crop_scale[0]), math.ceil(k.width / self.crop_scale[0])
        return generate_scene(self.seed(k.index), k.num_views, rw, rh, config)

    def __getitem__(self, item: int | SampleKey) -> dict:
        k = _key(item, self.num_views, self.height, self.width)
        if not 0 <= k.index < self.length:
            raise IndexError(f"sample {k.index} out of range (length {self.length})")
        scene = self.scene(k)
        images, Ks, depths, masks = scene.images, scene.intrinsics, scene.depths, scene.masks
        if self.crop_scale is not None:
            rng = np.random.default_rng([scene.meta["seed"], 2])
            images, Ks, depths, masks = _crop_views(scene, k.height, k.width, rng, self.crop_scale)
        sample = views_to_sample(images, Ks, scene.extrinsics, depths, masks, self.normalize)
        sample.update(seed=torch.tensor(scene.meta["seed"]), index=torch.tensor(k.index), kind=scene.meta["kind"])
        return sample


def _crop_views(scene: Scene, height: int, width: int, rng: np.random.Generator | None, crop_scale=(1.0, 1.0)):
    images, Ks, depths, masks = [], [], [], []
    for i in range(scene.num_views):
        img = scene.image(i)
        h, w = img.shape[:2]
        box = crop_box(w, h, width / height, rng.uniform(*crop_scale) if rng is not None else 1.0, rng)
        out = crop_resize(img, scene.intrinsics[i], width, height, box,
                          None if scene.depths is None else scene.depths[i], None if scene.masks is None else scene.masks[i])
        images.append(out["image"])
        Ks.append(out["intrinsics"])
        depths.append(out["depth"] if out["depth"] is not None else np.zeros((height, width), np.float32))
        masks.append(out["mask"] if out["mask"] is not None else np.zeros((height, width), bool))
    return images, np.stack(Ks), depths, masks


class SceneDataset(Dataset):
    """Samples of ``num_views`` views from posed scenes (e.g. readers' output): sample ``i`` takes a random
    subset (deterministic from ``seed`` and ``i``; sorted by view order) of scene ``i % len(scenes)``, centre-
    cropped to the output aspect and resized. Scenes without depth give zero depth and an all-False mask."""

    def __init__(self, scenes: Sequence[Scene], num_views: int = 8, height: int = 224, width: int = 224,
                 length: int | None = None, seed: int = 0, normalize: bool = True, random_crop: bool = False) -> None:
        missing = [s.meta.get("source", f"scene {i}") for i, s in enumerate(scenes) if not s.has_cameras]
        if missing:
            raise ValueError(f"SceneDataset needs posed scenes; without cameras: {missing}")
        self.scenes, self.num_views, self.height, self.width = list(scenes), num_views, height, width
        self.length = length or len(self.scenes)
        self.seed, self.normalize, self.random_crop = seed, normalize, random_crop

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item: int | SampleKey) -> dict:
        k = _key(item, self.num_views, self.height, self.width)
        scene = self.scenes[k.index % len(self.scenes)]
        rng = np.random.default_rng([self.seed, k.index])
        n = min(k.num_views, scene.num_views)
        views = np.sort(rng.choice(scene.num_views, n, replace=False))
        sub = scene.subset(views)
        images, Ks, depths, masks = _crop_views(sub, k.height, k.width, rng if self.random_crop else None)
        sample = views_to_sample(images, Ks, sub.extrinsics, depths if sub.depths is not None else None,
                                 masks if sub.masks is not None else None, self.normalize)
        sample.update(seed=torch.tensor(self.seed), index=torch.tensor(k.index), kind=str(scene.meta.get("source", "scene")))
        return sample


class MultiViewBatchSampler(Sampler[list[SampleKey]]):
    """Batches whose samples share a view count and resolution, with about ``images_per_batch`` images each.

    Every batch draws ``S`` uniformly from ``views`` and a size from ``sizes`` (``(height, width)`` pairs), and
    takes ``max(1, images_per_batch // S)`` sample indices from a per-epoch permutation of ``range(length)``.
    All ranks build the same batch sequence from ``seed`` and ``epoch`` and rank ``r`` keeps batches
    ``r, r + world_size, …`` (the sequence is cut to a multiple of ``world_size`` so ranks stay in step).
    Call :meth:`set_epoch` each epoch, as with ``DistributedSampler``.
    """

    def __init__(self, length: int, views: tuple[int, int] = (2, 24), sizes: Sequence[tuple[int, int]] = ((224, 224),),
                 images_per_batch: int = 48, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.length, self.views, self.sizes = length, views, [tuple(s) for s in sizes]
        self.images_per_batch, self.seed, self.rank, self.world_size = images_per_batch, seed, rank, world_size
        self.shuffle, self.epoch = shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[SampleKey]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        batches, pos = [], 0
        while pos < self.length:
            S = int(rng.integers(self.views[0], self.views[1] + 1))
            h, w = self.sizes[int(rng.integers(len(self.sizes)))]
            bs = max(1, self.images_per_batch // S)
            batches.append([SampleKey(int(i), S, h, w) for i in order[pos : pos + bs]])
            pos += bs
        usable = len(batches) // self.world_size * self.world_size
        return batches[:usable][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def collate(samples: list[dict]) -> dict:
    """Stack tensors into ``[B, ...]``; other values become lists."""
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return out
