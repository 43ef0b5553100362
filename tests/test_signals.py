"""SIGTERM (``docker stop``, schedulers) at every stage of a real ``mum-reconstruct`` process on the default path:
the network, SfM's feature extraction and matching (pycolmap's C++ running), the dense fit, the exports (the
hidden staging folder beside the output, and pycolmap writing the COLMAP model), and SfM of a video (its
decoded frames in ``$TMPDIR``). Issue 26 row 6: glog's handler, installed when pycolmap is imported, used to
kill the process with a stack dump and leave ``.out.<hex>/``, ``mum-sfm-*`` and ``mum-frames-*`` behind.

Each run has a private ``TMPDIR`` and writes into an existing output folder with ``--overwrite`` (a user's file
and an earlier export in it). Properties: exit status 143, exactly one line after the signal (``error:
interrupted (SIGTERM)``), ``TMPDIR`` empty (no frames, no COLMAP database, no glog log files), nothing hidden
beside the output, the output folder and the inputs exactly as they were.

The stage is found from the progress lines: the command runs under a wrapper that echoes each progress line to
stderr and, for the stages that run Python (the network, the dense fit, an export), holds there so that the
signal lands inside the stage; for pycolmap's stages the signal is sent while its C++ code runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUM = REPO / "demo" / "tum_freiburg" / "images"

WRAPPER = """
import os, sys, time
import app.cli
hold_at = os.environ.get("MUM_TEST_HOLD_AT") or None
real = app.cli._stage_printer
def printer(quiet):
    say = real(quiet)
    def stage(message):
        say(message)
        print("STAGE " + message, file=sys.stderr, flush=True)
        if hold_at is not None and message.startswith(hold_at):
            # the signal comes while the stage is held here; short sleeps, as Python runs a handler between
            # bytecodes: a signal landing after the print but before one long sleep would wait for its end
            for _ in range(2400):
                time.sleep(0.05)
    return stage
app.cli._stage_printer = printer
sys.exit(app.cli.main(sys.argv[1:]))
"""

# stage: (progress line that starts it, hold there, seconds to wait before the signal when not held)
STAGES = {
    "network": ("running the model", True, 0.0),
    "sfm-features": ("sfm: SIFT features", False, 0.8),
    "sfm-matching": ("sfm: matching", False, 0.3),
    "dense": ("dense: depth fitted", True, 0.0),
    "exports": ("writing {out}/depth", True, 0.0),
    "exports-colmap": ("writing {out}/sparse/0", False, 0.3),
    "video-sfm": ("sfm: matching", False, 0.3),
}


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (p.read_bytes() if p.is_file() and not p.is_symlink() else None,
                                                st.st_mtime_ns, st.st_mode)
    return out


def _video(path: Path, frames: list[Path]) -> Path:
    import cv2

    first = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (first.shape[1], first.shape[0]))
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigterm_at_each_stage_cleans_up_everything(tmp_path, stage):
    line, hold, delay = STAGES[stage]
    inputs = tmp_path / "in"
    inputs.mkdir()
    photos = sorted(TUM.glob("*.png"))[::4][:4]
    if stage == "video-sfm":
        source = _video(inputs / "clip.mp4", photos)
    else:
        for p in photos:
            shutil.copy(p, inputs / p.name)
        source = inputs
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    (out / "scene.ply").write_text("an earlier export")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    before_inputs, before_out = _tree(inputs), _tree(out)
    line = line.format(out=out)
    # without the test runner's TORCHINDUCTOR_CACHE_DIR (torch puts it in os.environ when torch._dynamo is
    # imported): a run must leave no compile cache folder in its TMPDIR either
    env = {**{k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}, "TMPDIR": str(private_tmp),
           "PYTHONPATH": str(REPO), "MUM_TEST_HOLD_AT": line if hold else ""}
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(source), "-o", str(out), "--overwrite", "--quiet",
                             "--size", "112"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    seen = []
    try:
        for text in proc.stderr:
            seen.append(text)
            if text.startswith("STAGE " + line):
                time.sleep(delay)
                proc.send_signal(signal.SIGTERM)
                break
        else:
            pytest.fail(f"the stage {line!r} never came: {''.join(seen)}")
        code = proc.wait(timeout=120)
        rest = [x for x in proc.stderr.read().splitlines() if not x.startswith("STAGE ")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 128 + signal.SIGTERM, (code, rest)
    assert rest == ["error: interrupted (SIGTERM)"], rest
    assert sorted(p.name for p in private_tmp.iterdir()) == []  # no frames, database or glog files left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "tmp"]  # nothing hidden beside the output
    assert _tree(out) == before_out and _tree(inputs) == before_inputs


def test_pycolmap_keeps_the_programs_sigterm_handler():
    """Importing pycolmap (through the one helper) leaves SIGTERM with the handler the program set, in the main
    thread and in another: glog's failure handler would print a stack dump and kill the process."""
    code = """
import os, signal, sys, threading, time
from mum.pycolmap_import import import_pycolmap
hits = []
signal.signal(signal.SIGTERM, lambda s, f: hits.append(s))
t = threading.Thread(target=import_pycolmap)
t.start(); t.join()
import pycolmap
assert "pycolmap" in sys.modules
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print("handled", hits)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_default_signals)
    assert proc.returncode == 0 and proc.stdout.strip() == f"handled [{int(signal.SIGTERM)}]", proc
    assert "SIGTERM" not in proc.stderr and "Aborted" not in proc.stderr, proc.stderr


def test_second_sigterm_does_not_cut_the_clean_up(tmp_path):
    """A second SIGTERM while the first one's clean-up runs is ignored: the clean-up finishes."""
    from app.engine.runtime import Terminated, signals_as_interrupt

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    removed = []
    with pytest.raises(Terminated):
        with signals_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # ignored now
                time.sleep(0.1)
                removed.append(True)
    assert removed == [True] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_interrupt_during_a_swallowing_import_acts_when_it_ends():
    """trimesh and matplotlib catch every exception while importing their optional parts: a SIGTERM landing there
    became a broken module and a run that finished (exit 0, SIGTERM ignored from then on). Inside
    ``signals_deferred`` the signal waits for the block's end, then raises as it would have."""
    from app.engine.runtime import Terminated, signals_as_interrupt, signals_deferred

    reached_the_end = False
    with pytest.raises(Terminated):
        with signals_as_interrupt():
            with signals_deferred():
                try:  # what such an import does with whatever is raised inside it
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.05)
                except BaseException:  # noqa: BLE001
                    pytest.fail("the signal acted inside the block")
                reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_a_second_ctrl_c_does_not_cut_the_clean_up():
    """Two quick Ctrl-Cs: the second landed in the clean-up (threads being joined) and ended the process with
    native threads still running (SIGABRT). After the first, further ones are ignored until the command ends."""
    from app.engine.runtime import signals_as_interrupt

    cleaned = False
    with pytest.raises(KeyboardInterrupt):
        with signals_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            finally:
                os.kill(os.getpid(), signal.SIGINT)  # the second, during the clean-up
                time.sleep(0.05)
                cleaned = True
    assert cleaned
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_while_torch_loads_is_one_line():
    """A Ctrl-C in a command's first second (torch being imported by ``app``'s package, before ``main`` and its
    handler exist) printed a 20-line traceback, or was swallowed inside torch's import and the command ran on;
    now ``error: interrupted`` and exit status 130. The signal is sent 0.3 s in: importing torch takes longer
    than that anywhere."""
    proc = subprocess.Popen([sys.executable, "-c", "import app.cli"], stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal starts it
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert (proc.returncode, err) == (130, "error: interrupted\n")
