"""Loss curves of training runs for the model card.

Usage: ``python scripts/plot_training.py OUT.png RUN_DIR [RUN_DIR ...]`` — one panel per run: the training
loss (smoothed) and the held-out evaluation metrics logged in ``RUN_DIR/metrics.jsonl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def smooth(values: np.ndarray, window: int = 10) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def main() -> None:
    out, runs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        rows = read_metrics(run)
        train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
        steps, loss = np.array(train).T
        ax.plot(steps[len(steps) - len(smooth(loss)) :], smooth(loss), label="train loss (smoothed)")
        ax.set(xlabel="step", ylabel="train loss", title=run.name)
        ax.grid(alpha=0.3)
        evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
        keys = sorted({k for r in evals for k in r if k.startswith("eval/")})
        if evals:
            twin = ax.twinx()
            for k in keys:
                pts = [(r["step"], r[k]) for r in evals if k in r]
                twin.plot(*np.array(pts).T, "o--", label=f"held-out {k[5:]}")
            twin.set_ylabel("held-out metric")
            lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
            labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
            ax.legend(lines, labels, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
