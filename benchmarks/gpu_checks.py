"""Every GPU check of the project in one run, one results JSON (``benchmarks/gpu_checks.sh`` is the entry point).

    python benchmarks/gpu_checks.py [--xformers DIR] [--out-dir benchmarks/results] [--budget-s 450]
    python benchmarks/gpu_checks.py --cpu-smoke --out-dir /tmp/x       # the same code at toy sizes on the CPU

Stages, in order of importance (each in its own subprocess; a stage that would not finish inside the time
budget is skipped and recorded as such, never cut short silently):

1. ``environment``: device, torch, CUDA, cuDNN, whether xformers' kernels run (the ``run`` block beside it
   has the commit, command line, machine and library versions, xformers included); the verdict of every attention backend on
   the shapes the models use (:func:`mum.layers.attention.backend_works`).
2. ``tests``: ``tests/test_gpu.py`` and the attention tests (``--runslow``; CUDA correctness: every working
   backend = the explicit softmax, xformers = SDPA when xformers runs, CUDA = CPU in float32, memory linear in
   frames, outputs gathered off the GPU, compiled = eager, fused AdamW).
3. ``xformers`` (with ``--xformers DIR``: a folder holding an installed xformers, e.g. the pinned 0.0.35 wheel,
   built for torch 2.10.0+cu128): the same GPU tests with it importable, ``python -m app.engine.self_check`` with
   ``auto`` (must succeed; one ``warning:`` line when its kernels do not run with this torch) and with
   ``MUM_ATTENTION=xformers`` (must fail with one ``error:`` line and exit 2 when they do not run).
4. ``predict``: ``benchmarks/inference.py``: mum-vitl16 at 1, 10, 50, 100, 200, 500, 1000 frames of 512 × 512
   px beside vggt-1b at 518 px up to 200 frames (time, peak GPU memory), attention ``auto``.
5. ``encoder``: ``benchmarks/encoder.py``: MuM ViT-L/16 at 512 px, batch 64, eager and compiled (MFU).
6. ``train``: ``benchmarks/train.py``: pretraining (vitl16) and distillation (mum-vitl16) at 224 px, 8 views,
   the batch that fills the GPU (``--batch auto``), eager, MFU.
7. ``train_compiled``: the same with ``--compile``.

Nothing here imports pycolmap, open3d, gradio, trimesh or plyfile (tests/test_gpu_checks.py runs the smoke mode
with them made unimportable): the lent GPU machine has PyTorch but not the project's other dependencies.
Writes ``gpu_checks_<commit>_cuda.json`` (``_cpu_smoke`` in smoke mode) in ``--out-dir``, with a ``targets``
section comparing the measurements with issue 24's "done when" figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import mum  # noqa: E402,F401  (sets the CPU threading policy before torch starts)
import torch  # noqa: E402

# seconds each stage is expected to take on one H100 (used to skip stages that would overrun the budget)
ESTIMATE_S = {"environment": 15, "tests": 100, "xformers": 70, "predict": 200, "encoder": 80, "train": 60,
              "train_compiled": 150}
SMOKE_ESTIMATE_S = {"environment": 5, "tests": 60, "xformers": 60, "predict": 60, "encoder": 60, "train": 60,
                    "train_compiled": 90}
GPU_TESTS = ["tests/test_gpu.py", "tests/test_attention.py", "-k", "not cli"]  # the CLI tests need pycolmap


class Runner:
    """Runs the stages in order against a time budget and collects their results."""

    def __init__(self, budget_s: float, smoke: bool, work: Path, log: Callable[[str], None]) -> None:
        self.start = time.monotonic()
        self.budget_s, self.smoke, self.work, self.log = budget_s, smoke, work, log
        self.results: dict[str, Any] = {}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def stage(self, name: str, fn: Callable[[], Any]) -> None:
        estimate = (SMOKE_ESTIMATE_S if self.smoke else ESTIMATE_S)[name]
        if estimate > self.left():
            self.results[name] = {"skipped": f"{estimate} s expected, {self.left():.0f} s of the budget left"}
            self.log(f"[{name}] skipped: {self.results[name]['skipped']}")
            return
        self.log(f"[{name}] running ({self.left():.0f} s of the budget left)")
        t0 = time.monotonic()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - one stage failing must not lose the others' results
            out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        out = out if isinstance(out, dict) else {"result": out}
        out["wall_s"] = round(time.monotonic() - t0, 1)
        self.results[name] = out
        self.log(f"[{name}] done in {out['wall_s']} s" + (f": {out['error'][:300]}" if "error" in out else ""))

    def run(self, cmd: list[str], env: Optional[dict] = None) -> dict:
        """``cmd`` in the repository with what is left of the budget as its timeout; its status and output."""
        timeout = max(10.0, self.left())
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return {"returncode": None, "timed_out_s": round(timeout), "stdout_tail": out[-3000:]}
        return {"returncode": proc.returncode, "stdout_tail": proc.stdout[-3000:], "stderr_tail": proc.stderr[-3000:],
                "stderr_lines": proc.stderr.splitlines()}


def environment(device: str) -> dict:
    from hardware import accelerator, peak_bf16_tflops
    from mum.layers.attention import BACKENDS, backend_verdict

    shapes = [(torch.bfloat16, 48), (torch.bfloat16, 64), (torch.float32, 48), (torch.float32, 64)]
    verdicts = {f"{b} {str(dt).removeprefix('torch.')} d={d}": backend_verdict(b, device, dt, d) or "works"
                for b in BACKENDS if b != "auto" for dt, d in shapes}
    info = {**accelerator(device), "torch": torch.__version__}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu_memory_gib=round(props.total_memory / 2**30, 1), sm_count=props.multi_processor_count,
                    capability=f"{props.major}.{props.minor}", peak_bf16_tflops=peak_bf16_tflops(device))
    return {**info, "attention_verdicts": verdicts}


def pytest_summary(result: dict) -> dict:
    tail = (result.get("stdout_tail") or "").strip().splitlines()
    result["summary"] = tail[-1] if tail else None
    result.pop("stderr_lines", None)
    return result


def xformers_stage(runner: Runner, folder: Path, device: str) -> dict:
    """The GPU tests and the self-check with the xformers in ``folder`` importable."""
    path = os.pathsep.join([str(folder), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {"PYTHONPATH": path, "MUM_ATTENTION": "auto"}
    probe = runner.run([sys.executable, "-c",
                        "import torch, sys; from mum.layers.attention import backend_works, xformers_versions, xformers_available;"
                        f"ok = xformers_available() and backend_works('xformers', '{device}', torch.bfloat16);"
                        "print(xformers_versions() if xformers_available() else 'not importable'); print('works' if ok else 'broken')"],
                       env)
    lines = (probe.get("stdout_tail") or "").strip().splitlines()
    works = bool(lines) and lines[-1] == "works"
    out: dict[str, Any] = {"folder": str(folder), "versions": lines[0] if lines else None, "kernels_run": works}
    out["tests"] = pytest_summary(runner.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runslow",
                                              *GPU_TESTS], env))
    check = [sys.executable, "-m", "app.engine.self_check", "--model", "mum-tiny", "--device", device]
    auto = runner.run(check, env)
    explicit = runner.run(check, {**env, "MUM_ATTENTION": "xformers"})
    warnings = [line for line in auto.pop("stderr_lines", []) if line.startswith("warning:")]
    errors = [line for line in explicit.pop("stderr_lines", []) if line.startswith("error:")]
    auto_ok = auto["returncode"] == 0 and len(warnings) == (0 if works or device != "cuda" else 1)
    explicit_ok = explicit["returncode"] == 0 if works else (explicit["returncode"] == 2 and len(errors) == 1)
    out["self_check_auto"] = {**auto, "warning_lines": warnings, "as_expected": auto_ok}
    out["self_check_explicit_xformers"] = {**explicit, "error_lines": errors, "as_expected": explicit_ok}
    return out


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def targets(results: dict) -> dict:
    """Issue 24's "done when" figures beside what this run measured (None where the stage did not run)."""
    rows = ((results.get("predict") or {}).get("results") or {}).get("rows") or []
    ok = [r for r in rows if "error" not in r]
    vitl = {r["frames"]: r for r in ok if r["preset"] == "mum-vitl16"}
    vggt = {r["frames"]: r for r in ok if r["preset"] == "vggt-1b"}
    at1000 = vitl.get(1000)
    speedup = vggt[200]["median_s"] / vitl[200]["median_s"] if 200 in vitl and 200 in vggt else None
    enc = ((results.get("encoder") or {}).get("results") or {}).get("rows") or []
    enc_mfu = {("compiled" if r["compiled"] else "eager"): r.get("mfu_percent") for r in enc if r["size"] == 512}
    train = {}
    for key in ("train", "train_compiled"):
        for r in ((results.get(key) or {}).get("results") or {}).get("rows") or []:
            train[f"{r['stage']}{'_compiled' if r['compiled'] else ''}"] = r.get("mfu_percent")

    def check(value: Optional[float], limit: float, below: bool) -> dict:
        met = None if value is None else (value <= limit if below else value >= limit)
        return {"measured": value, "target": limit, "met": met}

    return {
        "mum_vitl16_1000_frames_s": check(at1000 and at1000["median_s"], 45.0, True),
        "mum_vitl16_1000_frames_peak_gib": check(at1000 and at1000["peak_mem_mib"] / 1024, 40.0, True),
        "speedup_over_vggt_1b_at_200_frames": check(speedup, 5.0, False),
        "encoder_mfu_512px_percent": check(max((v for v in enc_mfu.values() if v is not None), default=None), 50.0, False),
        "encoder_mfu_512px_by_mode": enc_mfu,
        "train_mfu_pretrain_percent": check(max((v for k, v in train.items() if k.startswith("pretrain") and v), default=None), 35.0, False),
        "train_mfu_distill_percent": check(max((v for k, v in train.items() if k.startswith("distill") and v), default=None), 35.0, False),
        "train_mfu_by_mode": train,
    }


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true", help="the same stages at toy sizes on the CPU (checks the code)")
    p.add_argument("--xformers", type=Path, default=None, metavar="DIR",
                   help="a folder holding an installed xformers to test with (gpu_checks.sh installs .whl/xformers-*.whl there)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--budget-s", type=float, default=450.0, help="skip stages that would end after this (default 7.5 min)")
    p.add_argument("--skip", nargs="*", default=[], choices=sorted(ESTIMATE_S), help="stages to leave out")
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile (encoder eager only, no train_compiled)")
    args = p.parse_args(argv)
    smoke = args.cpu_smoke
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        print("error: no CUDA device (use --cpu-smoke to check the code on a CPU)", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, flush=True)

    from provenance import start_run, write_results

    run = start_run()
    work = Path(tempfile.mkdtemp(prefix="gpu-checks-"))
    runner = Runner(args.budget_s, smoke, work, log)
    py = sys.executable
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("environment", lambda: environment(device)),
        ("tests", lambda: pytest_summary(runner.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--runslow",
                                                     *GPU_TESTS]))),
    ]
    if args.xformers is not None:
        steps.append(("xformers", lambda: xformers_stage(runner, args.xformers, device)))

    def bench(name: str, cmd: list[str]) -> Callable[[], dict]:
        def go() -> dict:
            out = work / f"{name}.json"
            result = runner.run([py, *cmd, "--out", str(out)])
            result.pop("stderr_lines", None)
            return {**result, "results": read_json(out)}
        return go

    if smoke:
        predict = ["benchmarks/inference.py", "--device", "cpu", "--presets", "mum-tiny", "--frames", "1", "2", "--size", "32",
                   "--repeats", "1", "--attention", "auto"]
        encoder = ["benchmarks/encoder.py", "--device", "cpu", "--presets", "tiny", "--sizes", "32", "--batch", "2",
                   "--repeats", "1", "--attention", "auto"]
        train = ["benchmarks/train.py", "--device", "cpu", "--size", "32", "--views", "2", "--batch", "auto",
                 "--max-batch", "2", "--steps", "1"]
    else:
        predict = ["benchmarks/inference.py", "--device", "cuda", "--presets", "mum-vitl16", "vggt-1b",
                   "--frames", "1", "10", "50", "100", "200", "500", "1000", "--max-frames", "vggt-1b=200",
                   "--repeats", "3", "--attention", "auto"]
        encoder = ["benchmarks/encoder.py", "--device", "cuda", "--presets", "vitl16", "--sizes", "512", "--batch", "64",
                   "--repeats", "5", "--attention", "auto"]
        train = ["benchmarks/train.py", "--device", "cuda", "--size", "224", "--views", "8", "--batch", "auto",
                 "--max-batch", "64", "--steps", "5", "--pretrain-preset", "vitl16", "--distill-preset", "mum-vitl16"]
    steps += [("predict", bench("predict", predict)),
              ("encoder", bench("encoder", encoder if args.no_compile else [*encoder, "--compile"])),
              ("train", bench("train", train)), ("train_compiled", bench("train_compiled", [*train, "--compile"]))]
    for name, fn in steps:
        if name in args.skip or (name == "train_compiled" and args.no_compile):
            runner.results[name] = {"skipped": "--skip" if name in args.skip else "--no-compile"}
            continue
        runner.stage(name, fn)
    report = {
        "what": "benchmarks/gpu_checks.py" + (" --cpu-smoke (toy sizes: checks the code, measures nothing)" if smoke else ""),
        "budget_s": args.budget_s,
        "total_s": round(time.monotonic() - runner.start, 1),
        **runner.results,
    }
    report["targets"] = targets(runner.results)
    commit = (run.get("commit") or "unknown")[:10]
    out = write_results(args.out_dir / f"gpu_checks_{commit}_{'cpu_smoke' if smoke else 'cuda'}.json",
                        json.loads(json.dumps(report, default=str)), run)
    log(f"wrote {out} ({report['total_s']} s)")
    log(json.dumps(report["targets"]))
    failed = [n for n, r in runner.results.items() if isinstance(r, dict) and ("error" in r or r.get("returncode") not in (None, 0))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
