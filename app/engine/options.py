"""The options of a reconstruction, one object per stage, composed into the one object the orchestrator
(:mod:`app.engine.pipeline`) takes: every engine module imports its options from here (the dense stage's from
:mod:`app.engine.dense_options`), never from the orchestrator (no circle of imports); each stage's function takes
its own object, not the whole.

* ``PipelineOptions.cameras`` (:class:`CameraOptions`: ``sfm``, ``matching``): :mod:`app.engine.cameras`, and the
  sequence path's keyframe mapping;
* ``PipelineOptions.dense`` (:class:`~app.engine.dense_options.DenseOptions`): :mod:`app.engine.dense_geometry`.
"""

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
class MatchingOptions:
    """Which view pairs SfM matches (:mod:`app.engine.pair_selection`): every pair up to ``exhaustive_up_to``
    views, else per view its ``retrieval_neighbours`` nearest by the network's descriptor, its
    ``overlap_neighbours`` whose network depth overlaps it most and its ``sequential_window`` neighbours in input
    order."""

    exhaustive_up_to: int = 30
    retrieval_neighbours: int = 8
    overlap_neighbours: int = 8
    sequential_window: int = 2


@dataclass(frozen=True)
class CameraOptions:
    """The cameras stage (:mod:`app.engine.cameras`): ``sfm`` how SfM runs, ``matching`` which pairs it
    matches, ``native_log`` where COLMAP's C++ log lines go (``None``: the process's stderr)."""

    sfm: SfmOptions = field(default_factory=SfmOptions)
    matching: MatchingOptions = field(default_factory=MatchingOptions)
    native_log: Optional[str] = None


@dataclass(frozen=True)
class PipelineOptions:
    """How a scene is reconstructed, one options object per stage: ``cameras`` (:class:`CameraOptions`),
    ``dense`` (:class:`~app.engine.dense_options.DenseOptions`: the dense maps, their fusion and cross-check).
    ``fast``: the network alone (one pass, nothing else); with it ``fast_consistency`` measures the network's
    multi-view disagreement (O(S²) work)."""

    fast: bool = False
    cameras: CameraOptions = field(default_factory=CameraOptions)
    dense: DenseOptions = field(default_factory=DenseOptions)
    fast_consistency: bool = True
