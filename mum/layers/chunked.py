"""The project's one chunked per-frame loop: run a module over many frames a chunk at a time, so that memory
grows with the chunk, not with the number of frames (the encoder, the model's embedding, the aggregator's
patch embedding, the DPT heads).

The chunks' results are joined by :func:`gather_chunks`: the output is allocated once, at the first chunk, and
each chunk is copied in and dropped before the next one is computed, so there is never a second copy of every
frame's result (as ``torch.cat`` of a list makes); with another ``device`` (the CPU) the device computing the
chunks holds one chunk's result at a time.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from torch import Tensor


def _leaves(tree: Any) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    raise TypeError(f"chunked results must be tensors or (nested) tuples/lists of them, got {type(tree).__name__}")


def _skeleton(tree: Any) -> Any:
    """``tree`` with every tensor replaced by None (its structure, holding no memory)."""
    if isinstance(tree, Tensor):
        return None
    return type(tree)(_skeleton(item) for item in tree)


def _rebuild(skeleton: Any, leaves: Iterator[Tensor]) -> Any:
    if skeleton is None:
        return next(leaves)
    return type(skeleton)(_rebuild(item, leaves) for item in skeleton)


def gather_chunks(chunks: Iterable[Any], total: int, dim: int = 0, device: Optional[torch.device | str] = None) -> Any:
    """Join chunk results (each a tensor or a nested tuple/list of tensors, all split along ``dim``) into results
    of ``total`` along ``dim`` on ``device`` (default: the first chunk's device), consuming ``chunks`` lazily
    (see the module docstring). A single chunk holding everything is returned as it is (moved to ``device``)."""
    skeleton: Any = None
    out: Optional[list[Tensor]] = None
    start = 0
    for chunk in chunks:
        parts = _leaves(chunk)
        size = parts[0].shape[dim]
        if out is None:
            skeleton = _skeleton(chunk)
            if size == total:  # one chunk holds every frame: nothing to join
                return _rebuild(skeleton, iter([p.to(device) if device is not None else p for p in parts]))
            target = parts[0].device if device is None else torch.device(device)
            out = [torch.empty((*p.shape[:dim], total, *p.shape[dim + 1:]), dtype=p.dtype, device=target) for p in parts]
        del chunk
        for dst, part in zip(out, parts):
            dst.narrow(dim, start, size).copy_(part)
        start += size
        del parts
    if out is None or start != total:
        raise ValueError(f"the chunks held {start} items along dim {dim}, expected {total}")
    return _rebuild(skeleton, iter(out))


def map_chunks(fn: Callable[[Tensor], Any], frames: Tensor, chunk_size: Optional[int], batch_dims: int = 1) -> Any:
    """``fn`` over ``frames`` ``[*lead, ...]`` (``lead`` = the first ``batch_dims`` dims, flattened into one),
    ``chunk_size`` frames at a time (``None``: all at once); the results, a tensor or (nested) tuples and lists
    of tensors ``[n, ...]`` per chunk, are joined (:func:`gather_chunks`) and get ``lead`` back: ``[*lead, ...]``."""
    lead = frames.shape[:batch_dims]
    flat = frames.reshape(-1, *frames.shape[batch_dims:])
    if flat.shape[0] == 0:
        raise ValueError(f"no frames to run over (shape {tuple(frames.shape)})")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    chunk = chunk_size or flat.shape[0]
    joined = gather_chunks((fn(flat[start : start + chunk]) for start in range(0, flat.shape[0], chunk)), flat.shape[0])
    leaves = [t.reshape(*lead, *t.shape[1:]) for t in _leaves(joined)]
    return _rebuild(_skeleton(joined), iter(leaves))
