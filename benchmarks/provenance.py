"""What every benchmark results file records about the run that made it.

A results JSON under ``benchmarks/results/`` is only worth citing when one can tell what was run, where and
when. Every benchmark script calls :func:`start_run` first and writes its results through
:func:`write_results`, which adds a ``"run"`` block::

    "run": {
      "commit": "8e314e1…",            # HEAD of the repository the script ran from (null outside git)
      "dirty": false,                   # uncommitted changes to tracked files (or untracked files) at start
      "dirty_paths": [],                # which (at most 50), so a dirty run says what differed
      "command": "python benchmarks/real_scenes.py --quick",
      "started": "2026-12-03T21:40:12+00:00", "finished": "…", "wall_s": 812.4,
      "machine": {"cpu": "AMD EPYC 7B13", "logical_cpus": 2, "usable_cpus": 2, "torch_threads": 2,
                  "ram_gib": 23.5, "ram_available_gib_start": 17.2, "gpu": null, "platform": "Linux-…"},
      "load_average_start": [0.4, 0.6, 0.7], "load_average_end": [2.1, 1.8, 1.2],
      "versions": {"python": "3.12.3", "torch": "2.13.0+cpu", "pycolmap": "4.0.1", "numpy": "…", …}
    }

Load averages are the 1-, 5- and 15-minute figures of ``os.getloadavg()``: above the core count, other work
shared the CPU and timings are inflated. ``tests/test_claims.py`` checks that the results files the docs cite
carry this block.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# distribution names; the first of each tuple that is installed is reported under the first name
LIBRARIES = (("torch",), ("pycolmap",), ("numpy",), ("opencv-python-headless", "opencv-python"),
             ("open3d", "open3d-cpu"), ("kornia",), ("xformers",), ("gradio",))


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict:
    """``{"commit", "dirty", "dirty_paths"}`` of the repository the benchmarks belong to (``None``s outside git).

    Changes under ``benchmarks/results/`` do not make a run dirty: that is where the run itself writes.
    """
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=normal")
    if head is None or status is None:
        return {"commit": None, "dirty": None, "dirty_paths": []}
    paths = [line[3:] for line in status.splitlines() if line[3:] and not line[3:].startswith("benchmarks/results/")]
    return {"commit": head.strip(), "dirty": bool(paths), "dirty_paths": paths[:50]}


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again: ``python benchmarks/x.py --flag`` (script path relative to
    the repository when inside it)."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0])
        try:
            argv[0] = str(script.resolve().relative_to(ROOT))
        except ValueError:
            pass
    return shlex.join(["python", *argv])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo_gib(field: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """CPU model, core counts, RAM, the GPU (when torch sees one) and the platform string."""
    torch = sys.modules.get("torch")  # never import torch just for this (cli.py's parent process avoids it)
    gpu = None
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "ram_gib": _meminfo_gib("MemTotal"), "ram_available_gib_start": _meminfo_gib("MemAvailable"),
            "gpu": gpu, "platform": platform.platform()}


def versions() -> dict:
    """Python and the installed versions of the libraries that shape the results (no imports)."""
    out = {"python": platform.python_version()}
    for names in LIBRARIES:
        out[names[0]] = None
        for name in names:
            try:
                out[names[0]] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__  # the imported one (a local build may differ from the metadata)
    return out


def start_run(argv: list[str] | None = None) -> dict:
    """The provenance of a run that starts now; pass it to :func:`write_results` at the end."""
    return {**git_state(), "command": command_line(argv),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "load_average_start": load_average(), "versions": versions(),
            "_t0": time.monotonic()}


def finish_run(run: dict) -> dict:
    """``run`` completed with the end time, wall seconds and the load average at the end (a new dict)."""
    done = {k: v for k, v in run.items() if k != "_t0"}
    done["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if "_t0" in run:
        done["wall_s"] = round(time.monotonic() - run["_t0"], 1)
    done["load_average_end"] = load_average()
    torch = sys.modules.get("torch")
    if torch is not None and done.get("machine", {}).get("torch_threads") is None:  # imported after start_run
        done["machine"] = {**done.get("machine", {}), "torch_threads": torch.get_num_threads()}
        done["versions"] = {**done.get("versions", {}), "torch": torch.__version__}
    return done


def row_stamp(run: dict) -> dict:
    """``{"commit", "dirty", "started"}`` of ``run``, for the rows of a results file that merges rows of several
    runs (``--update``-style options): each row then says which run made it."""
    return {"commit": run.get("commit"), "dirty": run.get("dirty"), "started": run.get("started")}


def write_results(path: str | Path, results: dict, run: dict) -> Path:
    """Write ``results`` with ``"run": finish_run(run)`` as indented JSON to ``path`` (via a temporary file
    renamed into place, so an interrupted run never leaves half a file). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"run": finish_run(run), **{k: v for k, v in results.items() if k != "run"}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    os.replace(tmp, path)
    return path
