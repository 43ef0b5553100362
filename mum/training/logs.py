"""Metrics (TensorBoard when installed, JSONL always) and a console progress bar, on rank 0 only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Optional


class MetricsLogger:
    """``log(step, {"train/loss": ...})`` appends ``{"step": .., **metrics}`` to ``metrics.jsonl`` and, if
    ``tensorboard`` is importable, writes scalars to ``<out_dir>/tb``. A no-op on non-main ranks."""

    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out_dir) / "tb"))
        except Exception:  # noqa: BLE001 — tensorboard not installed
            self.tb = None

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "time": round(time.time(), 3), **metrics}) + "\n")
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_all_metrics(path: str | Path) -> dict[str, dict[int, float]]:
    """``{key: {step: value}}`` of every key in a ``metrics.jsonl`` except ``step``/``time`` (the last record
    of a step wins, e.g. after a resume)."""
    out: dict[str, dict[int, float]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        for key, value in rec.items():
            if key not in ("step", "time"):
                out.setdefault(key, {})[rec["step"]] = value
    return out


def read_metrics(path: str | Path, key: str) -> dict[int, float]:
    """``{step: value}`` of ``key`` in a ``metrics.jsonl`` (the last record wins, e.g. after a resume)."""
    return read_all_metrics(path).get(key, {})


class Progress:
    """tqdm bar over optimiser steps showing loss, lr and views/s (disabled off rank 0 or when asked)."""

    def __init__(self, total: int, start: int, enabled: bool, desc: str) -> None:
        self.bar: Optional[Any] = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True, smoothing=0.1)

    def update(self, postfix: Mapping[str, str]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
