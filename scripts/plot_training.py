"""Loss curves of training runs for the model card.

Usage: ``python scripts/plot_training.py OUT.png RUN_DIR [RUN_DIR ...]`` — one panel per run: the training
loss (smoothed) and the held-out evaluation metrics logged in ``RUN_DIR/metrics.jsonl``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mum.training.logs import read_all_metrics  # noqa: E402


PERCENT = ("eval/auc30", "eval/delta_1.25")  # held-out metrics in percent share one axis; others get their own


def smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def main() -> None:
    out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, axes = plt.subplots(2, len(runs), figsize=(6 * len(runs), 6.5), squeeze=False, sharex="col")
    for col, run in enumerate(runs):
        metrics = read_all_metrics(run / "metrics.jsonl")  # the last record of a step wins (resumed runs)
        steps, loss = np.array(sorted(metrics["train/loss"].items())).T
        top, bottom = axes[0, col], axes[1, col]
        top.plot(steps, loss, alpha=0.25, color="C0", label="train loss")
        top.plot(steps[len(steps) - len(smooth(loss)):], smooth(loss), color="C0", label="smoothed")
        top.set(ylabel="train loss", title=run.name)
        top.legend(fontsize=8)
        keys = sorted(k for k in metrics if k.startswith("eval/"))
        other = bottom.twinx() if any(k not in PERCENT for k in keys) and any(k in PERCENT for k in keys) else bottom
        for i, k in enumerate(keys):
            pts = np.array(sorted(metrics[k].items())).T
            ax = bottom if k in PERCENT or other is bottom else other
            ax.plot(*pts, "o-" if ax is bottom else "s--", color=f"C{i + 1}", label=f"held-out {k[5:]}")
        bottom.set(xlabel="step", ylabel="held-out (%)" if any(k in PERCENT for k in keys) else "held-out")
        if other is not bottom:
            other.set_ylabel("held-out (other)")
        handles = [h for a in dict.fromkeys((bottom, other)) for h in a.get_legend_handles_labels()[0]]
        bottom.legend(handles, [h.get_label() for h in handles], fontsize=8)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
