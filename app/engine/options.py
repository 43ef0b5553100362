"""The options of a reconstruction, one object per stage, composed into the one object the orchestrator
(:mod:`app.engine.pipeline`) takes: every engine module imports its options from here (the dense stage's from
:mod:`app.engine.dense_options`), never from the orchestrator (no circle of imports). Each stage's function takes
its own object; the long-input loops, which run every stage, take the whole.

* ``PipelineOptions.long_input`` (:class:`LongInputOptions`): :mod:`app.engine.planning`, then the long-input loops
  :mod:`app.engine.sequence` and :mod:`app.engine.chunked`;
* ``PipelineOptions.network`` (:class:`NetworkOptions`): :mod:`app.engine.network`;
* ``PipelineOptions.cameras`` (:class:`CameraOptions`: ``sfm``, ``matching``): :mod:`app.engine.cameras`, and the
  sequence path's keyframe mapping;
* ``PipelineOptions.dense`` (:class:`~app.engine.dense_options.DenseOptions`): :mod:`app.engine.dense_geometry`.

The cloud is made from the result on demand, after the reconstruction: its options (:class:`CloudOptions`) are
the front end's to choose per cloud (:func:`app.engine.point_budget.bounded_point_cloud`), not a field of
``PipelineOptions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

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
class LongInputOptions:
    """How an input is split into network passes (:func:`app.engine.planning.plan_views`) and the long paths run.
    ``window``: views per network pass (``None``: what the memory holds; on the sequence path frames per pass,
    ``None``: :class:`app.engine.sequence.SequenceOptions`'), ``overlap``: views shared by neighbouring chunks
    (``None``: a quarter of the window), ``sequence``: ``True`` the sequence path, ``False`` never, ``None`` for
    a video or numbered frames that follow each other closely (:func:`app.engine.planning.use_sequence_path`).
    The chunked path's (:func:`app.engine.chunked.reconstruct_in_chunks`): ``loop_closure`` between chunks, at
    most ``max_loops`` (``None``: half the chunks), and ``keep_pointmaps``: keep each view's point-head map
    (``--points-from pointmap``; one pass always keeps it)."""

    window: Optional[int] = None
    overlap: Optional[int] = None
    sequence: Optional[bool] = None
    loop_closure: bool = True
    max_loops: Optional[int] = None
    keep_pointmaps: bool = False


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
    """How a scene is reconstructed, one options object per stage: ``long_input`` (:class:`LongInputOptions`),
    ``network`` (:class:`NetworkOptions`), ``cameras`` (:class:`CameraOptions`), ``dense``
    (:class:`~app.engine.dense_options.DenseOptions`: the dense maps, their fusion and cross-check).
    ``fast``: the network alone (one pass, nothing else); with it ``fast_consistency`` measures the network's
    multi-view disagreement (O(S²) work)."""

    fast: bool = False
    long_input: LongInputOptions = field(default_factory=LongInputOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    cameras: CameraOptions = field(default_factory=CameraOptions)
    dense: DenseOptions = field(default_factory=DenseOptions)
    fast_consistency: bool = True


@dataclass(frozen=True)
class CloudOptions:
    """The cloud made from a result (:func:`app.engine.point_budget.bounded_point_cloud`): at most ``max_points``
    points, the pixels below the ``conf_percentile``-th percentile of confidence dropped (0: none), with
    ``mask_background`` the near-black / near-white pixels too, points from each view's ``source`` (``"depth"``:
    depth unprojected with the cameras; ``"pointmap"``: the point head's map, where kept) of the views in
    ``frames`` (``None``: every view). ``mum-reconstruct``: ``--max-points``, ``--conf-percentile``,
    ``--mask-background``, ``--points-from``; the web app's viewer filters."""

    max_points: int = 2_000_000
    conf_percentile: float = 0.0
    mask_background: bool = False
    source: str = "depth"
    frames: Optional[Sequence[int]] = None
