"""How the default path makes its dense depth and cloud (``--dense``, ``--dense-size``): the options of the dense
stage, checked when they are made.

* ``stereo`` (default): multi-view stereo on the SfM cameras (:mod:`app.engine.multiview_stereo`), the depth maps'
  holes filled by the network's depth fitted to the SfM points;
* ``fitted``: the network's depth fitted to the SfM points, fused and cross-checked (:mod:`app.engine.dense_fit`) —
  cheaper, for previews;
* ``none``: no dense cloud: the cloud holds the SfM points; the exported depth maps are the fitted depth at the
  network's resolution.

``--fast`` (the network alone) has no dense stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from app.engine.stereo import StereoOptions

DENSE_MODES = ("stereo", "fitted", "none")
FILL_MODES = ("maps", "cloud", "none")  # where stereo's holes take the fitted depth (see DenseOptions)
DEFAULT_SIZE = {"stereo": 640, "fitted": 256, "none": 0}  # long side of the dense maps (0: the network's grid)
MAX_DENSE_SIZE = 8192
MAX_STEREO_WORKERS = 4  # views worked on at once by default (each holds ~47 MB at 640 × 480 px while matched)


def _stereo_options() -> StereoOptions:
    from app.engine.stereo import StereoOptions  # imported when used: the command line's parser stays light

    return StereoOptions()


@dataclass(frozen=True)
class DenseOptions:
    """``mode``: one of :data:`DENSE_MODES`; ``size``: the dense maps' long side at least this many pixels (a
    whole multiple of the network's grid, at most the original images' resolution; ``None``: 640 for stereo,
    256 for fitted; 0: the network's grid). Stereo: ``neighbours`` source views per view; the network's fitted
    depth can add hypotheses around it to the plane sweep (``prior_range``; off: measured no better) and fills
    the pixels stereo leaves out, refitted to the view's stereo depth and scaled to it locally (``fill``): ``maps``: in the exported
    depth maps only, with confidence 0 (measured: in the cloud, the filled points cost more accuracy than they
    add completeness); ``cloud``: also in the cloud, within ``fill_radius`` (a share of the long side) of a kept
    stereo pixel where another view confirms the filled depth within ``fill_tolerance``; ``none``: stereo alone
    (NaN where it keeps nothing). ``plane_fill``: before that, a hole that stereo's kept pixels around it place on
    one of the scene's dominant planes takes that plane's depth (:mod:`app.engine.plane_fill`; ``fill`` other
    than ``none``). A stereo depth is kept when ``min_confirmed`` neighbours confirm it (round trip
    within ``pixel_tolerance`` px and ``depth_tolerance``, viewing rays meeting at ``min_angle`` degrees or more,
    :mod:`app.engine.depth_fusion`) and its NCC is at least ``min_score``. ``match_network_cameras``: views
    whose cameras are the network's (not SfM's or given) are matched too (the one-pass path); off (the sequence
    path: frames that could not be registered), they keep the fitted depth and are no other view's neighbour.
    ``workers``: views matched at once, each on a thread of its own (OpenCV and NumPy release the GIL; a view's
    result does not depend on it); 0: one per usable CPU, at most ``MAX_STEREO_WORKERS``; fewer where memory is
    short (:func:`app.engine.multiview_stereo.check_memory`).
    The fitted depth (every mode's, and ``fitted``'s result): each view's network depth scaled to the SfM points
    it sees, then multiplied by a smooth correction field (``depth_correction_field``); fused ``fusion_rounds``
    times with its ``consistency_neighbours`` most-overlapping views, a pixel kept when at least one of them has
    a depth within ``consistency_tolerance`` (relative) of it (``--fast`` measures its disagreement with the same
    neighbours and tolerance)."""

    mode: str = "stereo"
    size: Optional[int] = None
    neighbours: int = 4
    prior_range: bool = False
    fill: str = "maps"
    min_confirmed: int = 1
    min_score: float = 0.3
    pixel_tolerance: float = 1.0
    depth_tolerance: float = 0.01
    fill_tolerance: float = 0.015
    fill_radius: float = 0.025
    plane_fill: bool = True
    min_angle: float = 2.0
    match_network_cameras: bool = True
    workers: int = 0
    stereo: StereoOptions = field(default_factory=_stereo_options)
    depth_correction_field: bool = True
    fusion_rounds: int = 2
    consistency_neighbours: int = 4
    consistency_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {', '.join(FILL_MODES)} (got {self.fill!r})")
        if self.mode not in DENSE_MODES:
            raise ValueError(f"dense mode must be one of {', '.join(DENSE_MODES)} (got {self.mode!r})")
        if self.size is not None and not 0 <= self.size <= MAX_DENSE_SIZE:
            raise ValueError(f"dense size must be between 0 (the network's grid) and {MAX_DENSE_SIZE} px")
        if self.neighbours < 1 or self.min_confirmed < 0 or self.workers < 0:
            raise ValueError("neighbours must be at least 1, min_confirmed and workers at least 0")
        if not (self.pixel_tolerance > 0 and self.depth_tolerance > 0 and self.fill_tolerance > 0 and self.fill_radius >= 0
                and -1 <= self.min_score <= 1 and 0 <= self.min_angle < 90):
            raise ValueError("tolerances must be positive, fill_radius at least 0, min_score in [-1, 1] and min_angle "
                             "in [0, 90)")
        self.stereo.check()

    def for_parts(self, smallest_image: int | None = None) -> "DenseOptions":
        """These options for the parts of a long input (a chunk, a sequence's window), each made on its own: the
        maps' long side fixed now (this mode's default unless a size was given; at most ``smallest_image``, the
        long side of the smallest input image) so that every part's maps share one grid, also a part whose stereo
        falls back to the fitted depth (too few cameras from SfM) or whose images are larger than the others'."""
        size = self.long_side
        if size and smallest_image:
            size = min(size, smallest_image)
        return replace(self, size=size)

    @property
    def stereo_workers(self) -> int:
        """How many views the dense stage works on at once (``workers``, or one per usable CPU up to the maximum)."""
        from app.engine.view_threads import usable_cpus

        return self.workers or max(1, min(MAX_STEREO_WORKERS, usable_cpus()))

    @property
    def long_side(self) -> int:
        """The dense maps' minimum long side in pixels (0: the network's grid)."""
        return DEFAULT_SIZE[self.mode] if self.size is None else self.size
