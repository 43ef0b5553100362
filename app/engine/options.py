"""The options of a reconstruction, one object per stage, composed into the one object the orchestrator
(:mod:`app.engine.pipeline`) takes: every engine module imports its options from here, never from the
orchestrator (no circle of imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from app.engine.dense_options import DenseOptions
from app.engine.sfm import SfmOptions


@dataclass(frozen=True)
class NetworkOptions:
    """How the network runs (:mod:`app.engine.network`): ``long_side`` of its input in pixels (``None``: the
    model's size), the ``device``, and ``chunk_size`` frames per encoder/DPT chunk inside one pass (``None``: the
    model's; halved on out-of-memory)."""

    long_side: Optional[int] = None
    device: str = "cpu"
    chunk_size: Optional[int] = None


@dataclass(frozen=True)
class PipelineOptions:
    """How a scene is reconstructed. ``fast``: the network alone (one pass, nothing else).
    Matching: every pair up to ``exhaustive_up_to`` views, else ``retrieval_neighbours`` +
    ``overlap_neighbours`` + ``sequential_window`` per view. ``dense``: the dense stage (mode, size, stereo).
    Fitted depth: a pixel is kept when at least one of its ``consistency_neighbours`` most-overlapping views
    has a depth within ``consistency_tolerance`` (relative) of it."""

    fast: bool = False
    sfm: SfmOptions = field(default_factory=SfmOptions)
    exhaustive_up_to: int = 30
    retrieval_neighbours: int = 8
    overlap_neighbours: int = 8
    sequential_window: int = 2
    dense: DenseOptions = field(default_factory=DenseOptions)
    depth_correction_field: bool = True
    fusion_rounds: int = 2
    consistency_neighbours: int = 4
    consistency_tolerance: float = 0.05
    native_log: Optional[str] = None  # where COLMAP's C++ log lines go (None: the process's stderr)
    fast_consistency: bool = True  # with ``fast``: measure the network's multi-view disagreement (O(S²) work)
