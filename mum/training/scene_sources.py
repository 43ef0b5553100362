"""The concrete view sources behind :func:`mum.training.sources.build_source`: :class:`SyntheticSource` (scenes
rendered by the synthetic engine, exact cameras and dense depth) and :class:`SceneListSource` (scenes on disk:
image folders, COLMAP models, ``transforms.json``; sparse depth from COLMAP points)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mum.errors import UserError

from .config import DataConfig
from .data import SampleKey, sample_generator


def scene_to_tensors(scene: Any) -> dict[str, Tensor]:
    """A ``mum.data.Scene`` whose views are already at the training size → the source fields."""
    images = torch.from_numpy(np.stack([scene.image(i) for i in range(scene.num_views)])).permute(0, 3, 1, 2)
    out = {"images": images.float() / 255.0}
    if scene.has_cameras:
        out["extrinsics"] = torch.from_numpy(scene.extrinsics).float()
        out["intrinsics"] = torch.from_numpy(scene.intrinsics).float()
    if scene.depths is not None:
        depth = torch.from_numpy(np.stack(scene.depths)).float()
        valid = depth > 0
        if scene.masks is not None:
            valid &= torch.from_numpy(np.stack(scene.masks)).bool()
        out["depth"], out["valid"] = depth, valid
    return out


class SyntheticSource:
    """Scenes of the synthetic engine: sample ``index`` of ``split`` renders seed ``seed_for(split, index)``
    (the engine keeps train and test seed ranges apart) with ``num_views`` views at ``image_size``."""

    def __init__(self, cfg: DataConfig, split: str, seed: int) -> None:
        from mum.data.synthetic import SyntheticConfig

        self.split, self.seed, self.offset = split, seed, (seed * 100_003 if split == "train" else 0)
        self.H, self.W = cfg.image_size
        self.pool = cfg.scene_pool if split == "train" else 0
        self.pool_views = cfg.views_max
        self.config = SyntheticConfig(kinds=tuple(cfg.scene_kinds)) if cfg.scene_kinds else SyntheticConfig()
        self._cache: dict[int, dict[str, Tensor]] = {}

    def _render(self, index: int, num_views: int) -> dict[str, Tensor]:
        from mum.data.synthetic import generate_scene, seed_for

        scene = generate_scene(seed_for(self.split, self.offset + index), num_views, self.W, self.H, self.config)
        return scene_to_tensors(scene)

    def __call__(self, key: SampleKey) -> dict[str, Tensor]:
        if not self.pool:
            return {**self._render(key.index, key.num_views), "index": torch.tensor(key.index)}
        base = key.index % self.pool  # pooled: same world and cameras, a per-sample subset of its views
        if base not in self._cache:
            self._cache[base] = self._render(base, self.pool_views)
        pick = torch.randperm(self.pool_views, generator=sample_generator(self.seed + 7, key.index))[: key.num_views]
        full = self._cache[base]
        return {**{k: v[pick] for k, v in full.items()}, "index": torch.tensor(key.index)}


@lru_cache(maxsize=8)
def _read_scene(path: str) -> Any:
    from mum.data import readers  # type: ignore[attr-defined]

    return readers.read_scene(path)


class SceneListSource:
    """Views drawn from scenes on disk (image folders, COLMAP models, ``transforms.json``): sample ``index``
    picks scene ``index mod n`` and ``num_views`` of its views from the sample's generator, resized to
    ``image_size`` (intrinsics scaled; sparse depth from COLMAP points where present)."""

    def __init__(self, cfg: DataConfig, split: str, seed: int, need_cameras: bool) -> None:
        if not cfg.paths:
            raise UserError(f"data.source {cfg.source!r} needs data.paths (scene folders)")
        self.paths, self.seed, self.need_cameras = list(cfg.paths), seed + (0 if split == "train" else 12345), need_cameras
        self.H, self.W = cfg.image_size

    def __call__(self, key: SampleKey) -> dict[str, Tensor]:
        from mum.geometry import sparse_depth
        from mum.data.views import crop_resize

        scene = _read_scene(self.paths[key.index % len(self.paths)])
        if self.need_cameras and not scene.has_cameras:
            raise UserError(f"{self.paths[key.index % len(self.paths)]}: no camera poses (need COLMAP or transforms.json)")
        g = sample_generator(self.seed, key.index)
        n = scene.num_views
        idx = torch.randperm(n, generator=g)[: key.num_views].tolist() if n >= key.num_views else \
            torch.randint(0, n, (key.num_views,), generator=g).tolist()
        imgs, Ks = [], []
        for i in idx:  # centre crop to the output aspect, resize; intrinsics follow (mum.data.views)
            K = None if scene.intrinsics is None else scene.intrinsics[i]
            o = crop_resize(scene.image(i), K, self.W, self.H)
            imgs.append(torch.from_numpy(np.ascontiguousarray(o["image"])).permute(2, 0, 1).float() / 255.0)
            Ks.append(o["intrinsics"])
        out: dict[str, Tensor] = {"images": torch.stack(imgs).clamp(0, 1), "index": torch.tensor(key.index)}
        if scene.has_cameras:
            E, K = scene.extrinsics[idx], np.stack(Ks)
            out["extrinsics"], out["intrinsics"] = torch.from_numpy(E).float(), torch.from_numpy(K).float()
            if scene.points3d is not None:
                d, v = sparse_depth(scene.points3d, E, K, self.H, self.W)
                out["depth"], out["valid"] = torch.from_numpy(d), torch.from_numpy(v)
        return out
