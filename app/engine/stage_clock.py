"""Wall and CPU seconds per stage of a reconstruction, and the peak memory at the end of each.

Every path records its stages with one :class:`StageClock` and puts :meth:`StageClock.summary` in
``recon.meta["stage_seconds"]``, grouped into what every path has — ``network``, ``cameras`` (SfM, PnP, joins,
bundle adjustment) and ``dense`` — so that a benchmark can tell the time to the cameras from the whole command's
(plain pycolmap gives cameras only; :mod:`benchmarks.long_video`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

STAGES = ("network", "cameras", "dense")


class StageClock:
    """Wall and CPU seconds per stage (the CPU time of the whole process: a fair measure on a shared machine) and
    the process's peak RSS (MiB) so far at the end of each stage (where it grows, that stage raised it).
    :meth:`lap` closes the stage that ran since the previous lap (or since the clock was made); a stage lapped
    again adds up (the chunked path laps each stage once per chunk)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak_rss: dict[str, float] = {}
        self._t = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[stage] = round(self.wall.get(stage, 0.0) + now[0] - self._t[0], 3)
        self.cpu[stage] = round(self.cpu.get(stage, 0.0) + now[1] - self._t[1], 3)
        self._t = now
        try:
            import resource

            self.peak_rss[stage] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
        except ImportError:  # not on Windows
            pass

    def summary(self, groups: Mapping[str, Iterable[str]] | None = None) -> dict[str, dict[str, float]]:
        """``{"wall": {stage: s}, "cpu": {stage: s}}`` over :data:`STAGES`; ``groups`` maps each of them to the
        laps it sums (default: the lap of the same name)."""
        groups = groups or {stage: (stage,) for stage in STAGES}
        return {kind: {stage: round(sum(laps.get(lap, 0.0) for lap in groups[stage]), 3) for stage in STAGES}
                for kind, laps in (("wall", self.wall), ("cpu", self.cpu))}

