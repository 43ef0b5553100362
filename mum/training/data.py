"""Deterministic, step-indexed batches: exact resume and rank-invariant global batches.

Every sample is named by a :class:`SampleKey` ``(index, num_views, crop)``; a source turns a key into tensors
deterministically (scene seed, view choice and any random masking derive from the index). Optimiser step
``t`` uses the global sample indices ``t·B … t·B + B - 1`` and one view count (and, with several crop sizes,
one crop size) drawn from ``(seed, t)``;
rank ``r`` of ``W`` takes, in micro-step ``m``, the slice starting at ``t·B + (m·W + r)·b``. Hence the data
position is just the step number, and 1 process × batch B sees exactly the samples of W processes × B/W.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class SampleKey:
    """One training sample: a scene ``index`` (within the split) with ``num_views`` views, centre-cropped to
    ``crop`` ``(H, W)`` when set."""

    index: int
    num_views: int
    crop: Optional[tuple[int, int]] = None


SampleFn = Callable[[SampleKey], Mapping[str, Any]]


def views_for_step(seed: int, step: int, views_min: int, views_max: int) -> int:
    """View count shared by all samples of optimiser step ``step`` (same on every rank)."""
    if views_min >= views_max:
        return views_min
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return int(torch.randint(views_min, views_max + 1, (1,), generator=g))


def crop_for_step(seed: int, step: int, sizes: Sequence[tuple[int, int]]) -> Optional[tuple[int, int]]:
    """Crop size shared by all samples of optimiser step ``step`` (``None`` without ``sizes``)."""
    if not sizes:
        return None
    g = torch.Generator().manual_seed(seed * 2_000_029 + step + 17)
    return tuple(sizes[int(torch.randint(len(sizes), (1,), generator=g))])  # type: ignore[return-value]


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A torch generator owned by one sample (for masking, view order, augmentation)."""
    return torch.Generator().manual_seed((seed * 7_919_993 + index) % (2**63 - 1))


class StepBatchSampler(Sampler[list[SampleKey]]):
    """Yields this rank's micro-batches of keys for steps ``start_step … steps-1``, ``accum`` per step."""

    def __init__(
        self,
        seed: int,
        batch_size: int,
        micro_batch: int,
        rank: int,
        world: int,
        views: tuple[int, int],
        steps: int,
        start_step: int = 0,
        crops: Sequence[tuple[int, int]] = (),
    ) -> None:
        if batch_size % (micro_batch * world):
            raise ValueError(f"batch_size {batch_size} is not a multiple of micro_batch {micro_batch} × world {world}")
        self.seed, self.B, self.b, self.rank, self.world = seed, batch_size, micro_batch, rank, world
        self.views, self.steps, self.start, self.crops = views, steps, start_step, list(crops)
        self.accum = batch_size // (micro_batch * world)

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.accum

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start, self.steps):
            S = views_for_step(self.seed, step, *self.views)
            crop = crop_for_step(self.seed, step, self.crops)
            for m in range(self.accum):
                first = step * self.B + (m * self.world + self.rank) * self.b
                yield [SampleKey(first + i, S, crop) for i in range(self.b)]


class KeyedDataset(Dataset):
    """Map-style dataset whose items are :class:`SampleKey` → dict of tensors (via ``sample_fn``)."""

    def __init__(self, sample_fn: SampleFn) -> None:
        self.sample_fn = sample_fn

    def __getitem__(self, key: SampleKey) -> Mapping[str, Any]:  # type: ignore[override]
        return self.sample_fn(key)

    def __len__(self) -> int:  # unbounded; samplers drive it
        return 2**62


def collate(samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack tensor fields to ``[b, ...]``; keep other fields as lists."""
    out: dict[str, Any] = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def make_loader(sample_fn: SampleFn, sampler: Sampler, num_workers: int = 0) -> DataLoader:
    """DataLoader over keyed samples; workers render scenes in parallel, order is kept."""
    return DataLoader(
        KeyedDataset(sample_fn),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )


def eval_keys(num_scenes: int, num_views: int, batch: int) -> list[list[SampleKey]]:
    """Fixed held-out batches: test-split indices ``0 … num_scenes-1`` with ``num_views`` views each."""
    keys = [SampleKey(i, num_views) for i in range(num_scenes)]
    return [keys[i : i + batch] for i in range(0, len(keys), batch)]


def to_device(batch: Mapping[str, Any], device: torch.device, non_blocking: bool = True) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


