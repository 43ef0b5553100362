"""The model card's evaluation: the bundled model (``mum-default``) beside the untrained model of the same size
(``mum-tiny``, random weights, seed 0), with ``mum-eval``'s protocol (``app/evaluate.py``).

Run: ``python benchmarks/model_eval.py`` (``--scenes N``: held-out synthetic scenes, default 50; ≈ 10–20 min on
the 2-core CPU). For each model:

* **synthetic**: the first N held-out test scenes of the data engine, 10 views at 128 × 128 (the bundled
  model's training size): pose AUC@30 over all pairs (pair error = max of rotation and translation-direction
  error), RRA/RTA, depth AbsRel and δ<1.25 after per-image median scaling, point clouds after Sim(3) + ICP
  (accuracy, completeness, normal consistency), and AUC@30 by scene kind (room, terrain, object);
* **real**: the demo scenes against their reference cameras, 10 views (seed 0) at 96 × 128: pose AUC@30,
  RRA, RTA. The references of ``demo/tum_freiburg`` and ``demo/sacre_coeur`` were made by pycolmap SfM on the
  same images, ``demo/buddha``'s by AliceVision SfM, ``demo/synthetic_room``'s are the engine's exact cameras.

Prints the model card's tables and writes ``benchmarks/results/model_eval_cpu.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mum  # noqa: E402,F401  (CPU threading policy first)

from benchmarks.provenance import start_run, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("mum-default", "mum-tiny")
REAL = {  # scene → what it is and where its reference cameras come from
    "demo/sacre_coeur": "Flickr photos; reference: pycolmap SfM of the same photos",
    "demo/synthetic_room": "validation split; exact cameras",
    "demo/tum_freiburg": "TUM RGB-D desk; reference: pycolmap SfM of the same frames",
    "demo/buddha": "AliceVision; reference: AliceVision SfM",
}
LABELS = {"mum-default": "mum-default (bundled)", "mum-tiny": "untrained mum-tiny"}
SHORT = {"mum-default": "mum-default", "mum-tiny": "untrained"}


def evaluate(argv: list[str]) -> dict:
    """``mum-eval argv`` in this process (the same code path as the command), its results dict."""
    from app.evaluate import build_parser, run

    return run(build_parser().parse_args(argv))


def by_kind(per_scene: dict[str, dict]) -> dict[str, dict]:
    """AUC@30 of the synthetic test scenes grouped by the engine's scene kind."""
    from mum.data.synthetic import scene_kind, seed_for

    groups: dict[str, list[float]] = {}
    for name, row in per_scene.items():
        index = int(name.rsplit("/", 1)[1])
        groups.setdefault(scene_kind(seed_for("test", index)), []).append(row["auc30"])
    return {kind: {"scenes": len(v), "auc30": sum(v) / len(v)} for kind, v in sorted(groups.items())}


def _bold_better(values: list[float], higher: bool, fmt: str) -> list[str]:
    best = max(values) if higher else min(values)
    return [f"**{fmt.format(v)}**" if v == best and values.count(best) == 1 else fmt.format(v) for v in values]


def synthetic_table(results: dict) -> str:
    """The model card's table of the held-out synthetic scenes (better of the two models in bold)."""
    models = list(results["evaluations"])
    summaries = [next(iter(results["evaluations"][m]["synthetic"]["summary"].values())) for m in models]
    columns = [("auc30", True, "{:.1f}"), ("rra", False, "{:.1f}"), ("rta", False, "{:.1f}"), ("abs_rel", False, "{:.3f}"),
               ("delta_1.25", True, "{:.1f}")]
    cells = [_bold_better([s[k] for s in summaries], higher, fmt) for k, higher, fmt in columns]
    pairs = [("acc_mean", "acc_median", "{:.3f}"), ("comp_mean", "comp_median", "{:.2f}")]
    for mean, median, fmt in pairs:  # one cell "mean / median", bold when both are better
        better = [all(s[k] == min(t[k] for t in summaries) for k in (mean, median)) for s in summaries]
        cells.append([("**{} / {}**" if b and better.count(True) == 1 else "{} / {}").format(fmt.format(s[mean]), fmt.format(s[median]))
                      for s, b in zip(summaries, better)])
    cells.append(_bold_better([s["nc_mean"] for s in summaries], True, "{:.2f}"))
    lines = ["| model | AUC@30 ↑ | RRA ° ↓ | RTA ° ↓ | AbsRel ↓ | δ<1.25 % ↑ | accuracy mean / median ↓ | "
             "completeness mean / median ↓ | normal consistency ↑ |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, m in enumerate(models):
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(col[i] for col in cells) + " |")
    return "\n".join(lines)


def real_table(results: dict) -> str:
    """The model card's table of the demo scenes against their reference cameras."""
    models = list(results["evaluations"])
    lines = ["| scene | views | " + " | ".join(f"{SHORT.get(m, m)} AUC@30 / RRA ° / RTA °" for m in models) + " |",
             "|---|---|" + "---|" * len(models)]
    for scene, what in REAL.items():
        rows = [results["evaluations"][m]["real"]["scenes"][scene] for m in models]
        auc = _bold_better([r["auc30"] for r in rows], True, "{:.1f}")
        cells = [f"{a} / {r['rra']:.1f} / {r['rta']:.1f}" for a, r in zip(auc, rows)]
        lines.append(f"| `{scene}` ({what}) | {int(rows[0]['views'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=50, help="held-out synthetic scenes (default 50)")
    parser.add_argument("--out", default=str(RESULTS / "model_eval_cpu.json"))
    args = parser.parse_args()
    run = start_run()
    results: dict = {"evaluations": {}, "synthetic_by_kind": {}}
    real_args = ["--views", "10", "--size", "96", "128", "--quiet"] + [a for s in REAL for a in ("--scene", str(ROOT / s))]
    for model in MODELS:
        synthetic = evaluate(["--model", model, "--synthetic", str(args.scenes), "--views", "10", "--size", "128", "128",
                              "--quiet"])
        real = evaluate(["--model", model, *real_args])
        real["scenes"] = {str(Path(k).resolve().relative_to(ROOT)): v for k, v in real["scenes"].items()}
        results["evaluations"][model] = {"synthetic": synthetic, "real": real}
        results["synthetic_by_kind"][model] = by_kind(synthetic["scenes"])
    out = write_results(args.out, results, run)
    print(synthetic_table(results))
    print()
    print(real_table(results))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
