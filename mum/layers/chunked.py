"""The project's one chunked per-frame loop: run a module over many frames a chunk at a time, so that memory
grows with the chunk, not with the number of frames (the encoder, the model's embedding, the aggregator's
patch embedding)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor


def map_chunks(fn: Callable[[Tensor], Any], frames: Tensor, chunk_size: Optional[int], batch_dims: int = 1) -> Any:
    """``fn`` over ``frames`` ``[*lead, ...]`` (``lead`` = the first ``batch_dims`` dims, flattened into one),
    ``chunk_size`` frames at a time (``None``: all at once); the results, a tensor or (nested) tuples and lists
    of tensors ``[n, ...]`` per chunk, are concatenated and get ``lead`` back: ``[*lead, ...]``."""
    lead = frames.shape[:batch_dims]
    flat = frames.reshape(-1, *frames.shape[batch_dims:])
    if flat.shape[0] == 0:
        raise ValueError(f"no frames to run over (shape {tuple(frames.shape)})")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    chunk = chunk_size or flat.shape[0]
    return _concat([fn(flat[start : start + chunk]) for start in range(0, flat.shape[0], chunk)], lead)


def _concat(parts: list, lead: torch.Size) -> Any:
    first = parts[0]
    if isinstance(first, Tensor):
        joined = torch.cat(parts)
        return joined.reshape(*lead, *joined.shape[1:])
    if isinstance(first, (tuple, list)):
        return type(first)(_concat([p[i] for p in parts], lead) for i in range(len(first)))
    raise TypeError(f"map_chunks: fn returned {type(first).__name__}; expected tensors or tuples/lists of them")
