"""What adversarial testing of `mum-reconstruct` found (issue 17, items 1-4 and 6), one regression test each:
a decompression bomb, ``--overwrite`` on a folder holding other files or the inputs, outputs that appear during
a run, concurrent runs, stale temporaries, SIGTERM/SIGHUP, tracebacks (link loops, huge numbers, unreadable
folders, Ctrl-C while pycolmap is imported), file names with control characters, ``-o NAME.json/`` and Pillow
warnings. Every refusal is one ``error:`` line with exit status 2 (130 when interrupted), and no user file is lost.

The network runs alone (``--fast``) with a tiny random-weight model at 64 px: these tests are about the command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import FOLDER_ENTRIES, main
from app.engine.runtime import EXIT_INTERRUPTED, EXIT_USER_ERROR
from mum.errors import UserError
from mum.files import atomic_dir, atomic_path, check_output_path, remove_stale_temporaries, rename_noreplace

REPO = Path(__file__).resolve().parents[1]
FAST = ["--fast", "--model", "mum-tiny", "--size", "64", "--quiet"]


def _image(path: Path, size: tuple[int, int] = (48, 32), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _inputs(d: Path, n: int = 2) -> Path:
    for i in range(n):
        _image(d / "in" / f"v{i}.png", seed=i)
    return d / "in"


def _run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def _cli(*argv: str | Path, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *map(str, argv)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env={**os.environ, **(env or {})}, **kw)


def _one_line(code: int, err: list[str] | str, needle: str, status: int = EXIT_USER_ERROR) -> None:
    lines = err.strip().splitlines() if isinstance(err, str) else err
    assert code == status, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0], lines[0]


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (links not followed) with a file's bytes, ``None`` for folders and links."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------------------------- 1. pixels
def _png_bomb(path: Path, side: int = 30000) -> Path:
    """A valid 1-bit PNG of ``side`` x ``side`` zero pixels: about 110 KB on disk, ``side``² bytes decoded."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    z = zlib.compressobj(6)
    idat = b"".join(z.compress(row * 1000) for _ in range(side // 1000)) + z.compress(row * (side % 1000)) + z.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_refused_from_the_header(tmp_path: Path) -> None:
    """30000 x 30000 pixels in 110 KB used to take 10 GB and 37 s; now refused from the header: one line,
    exit 2, in the time and memory of any other error (the process start imports torch)."""
    bomb = _png_bomb(tmp_path / "in" / "bomb.png")
    _image(tmp_path / "in" / "a.png")  # the bomb is refused before the other image is decoded
    assert bomb.stat().st_size < 200_000
    start = time.perf_counter()
    # the command's own peak memory after exec (VmHWM): ru_maxrss would include the forked pytest's pages
    hwm = tmp_path / "vmhwm_kib"
    wrapper = ("import atexit, runpy, sys\n"
               "out = sys.argv[1]\n"
               "def record():\n"
               "    peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
               "    open(out, 'w').write(peak[0])\n"
               "atexit.register(record)\n"
               "sys.argv = ['mum-reconstruct'] + sys.argv[2:]\n"
               "runpy.run_module('app.cli', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, str(hwm), str(tmp_path / "in"), "-o", str(tmp_path / "o.ply"),
                           *FAST], cwd=REPO, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    _one_line(proc.returncode, proc.stderr, "too large (900,000,000 pixels")
    assert "DecompressionBomb" not in proc.stderr and not (tmp_path / "o.ply").exists()
    peak_kib = int(hwm.read_text())
    assert elapsed < 30 and peak_kib < 1_500_000, (elapsed, peak_kib)  # decoding the bomb took 10 GB


def test_bomb_refused_in_milliseconds_by_the_loader(tmp_path: Path) -> None:
    from mum.io import load_views

    bomb = _png_bomb(tmp_path / "bomb.png")
    start = time.perf_counter()
    with pytest.raises(UserError, match="too large"):
        load_views([bomb])
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_from_flag_and_environment(tmp_path: Path, capsys, monkeypatch) -> None:
    """80 x 60 = 4800 pixels: refused under a 4000-pixel limit (environment), accepted when the flag raises it;
    between the limit and twice it Pillow would warn: nothing but our line is printed."""
    inputs = tmp_path / "in"
    _image(inputs / "a.png", (80, 60))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # Pillow's global: back afterwards
    monkeypatch.setenv("MUM_MAX_PIXELS", "4000")
    code, err = _run(capsys, inputs, "-o", tmp_path / "a.json", *FAST)
    _one_line(code, err, "80x60 = 4,800 pixels, the limit is 4,000")
    code, err = _run(capsys, inputs, "-o", tmp_path / "a.json", *FAST, "--max-pixels", "5000")
    assert code == 0, err
    monkeypatch.setenv("MUM_MAX_PIXELS", "lots")
    code, err = _run(capsys, inputs, "-o", tmp_path / "b.json", *FAST)
    _one_line(code, err, "MUM_MAX_PIXELS")
    monkeypatch.delenv("MUM_MAX_PIXELS")
    code, err = _run(capsys, inputs, "-o", tmp_path / "b.json", *FAST, "--max-pixels", "0")
    _one_line(code, err, "--max-pixels")


def test_a_lower_limit_for_one_call_leaves_pillows_guard_alone(tmp_path: Path, monkeypatch) -> None:
    """``max_pixels`` below the process-wide limit refuses the image without lowering Pillow's global guard
    (other Pillow users in the process would start warning)."""
    from mum.io import DEFAULT_MAX_PIXELS, read_image

    monkeypatch.delenv("MUM_MAX_PIXELS", raising=False)
    img = _image(tmp_path / "a.png", (80, 60))
    with pytest.raises(UserError, match="the limit is 1,000"):
        read_image(img, max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS
    assert read_image(img, max_pixels=DEFAULT_MAX_PIXELS * 3).shape == (60, 80, 3)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS * 3  # raised for a call allowed more
    read_image(img)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_pillow_warnings_never_reach_stderr(tmp_path: Path) -> None:
    """A corrupt EXIF block (Pillow: "Truncated File Read") and an image between the limit and twice it
    (Pillow: DecompressionBombWarning) print nothing of Pillow's."""
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHII", 0x010E, 2, 100, 1000) + struct.pack("<I", 0))  # text tag pointing past the end
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "exif.jpg", exif=b"Exif\x00\x00" + tiff)
    proc = _cli(tmp_path / "in", "-o", tmp_path / "o.ply", *FAST)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    proc = _cli(tmp_path / "in", "-o", tmp_path / "p.ply", *FAST, env={"MUM_MAX_PIXELS": "1000"})
    _one_line(proc.returncode, proc.stderr, "too large")


# ------------------------------------------------------------------------------------------ 2. overwrite
def test_overwrite_folder_replaces_only_its_own_exports(tmp_path: Path, capsys) -> None:
    """``-o ~/Documents --overwrite`` used to delete the whole folder, a thesis included."""
    inputs = _inputs(tmp_path)
    out = tmp_path / "Documents"
    (out / "notes").mkdir(parents=True)
    (out / "thesis.pdf").write_bytes(b"four years")
    (out / "notes" / "todo.txt").write_text("finish")
    (out / "sparse" / "1").mkdir(parents=True)
    (out / "sparse" / "1" / "mine.txt").write_text("another model")
    (out / "scene.ply").write_text("old export")
    code, err = _run(capsys, inputs, "-o", out, *FAST, "--overwrite")
    assert code == 0, err
    assert (out / "thesis.pdf").read_bytes() == b"four years" and (out / "notes" / "todo.txt").read_text() == "finish"
    assert (out / "sparse" / "1" / "mine.txt").read_text() == "another model"
    assert (out / "scene.ply").read_bytes().startswith(b"ply")
    assert {p.name for p in out.iterdir()} == {"thesis.pdf", "notes", "scene.ply", "scene.glb", "cameras.json",
                                               "depth", "sparse", "transforms.json"}
    assert {p.name for p in (out / "sparse").iterdir()} == {"0", "1"}
    assert _hidden(out) == [] and _hidden(tmp_path) == []
    code, err = _run(capsys, inputs, "-o", out, *FAST, "--overwrite")  # and again: still only ours replaced
    assert code == 0, err
    assert (out / "thesis.pdf").read_bytes() == b"four years" and (out / "notes" / "todo.txt").read_text() == "finish"
    assert (out / "sparse" / "1" / "mine.txt").read_text() == "another model"


def test_overwrite_keeps_inputs_that_are_links_into_the_output(tmp_path: Path, capsys) -> None:
    """Input images that are symbolic links to photos in the output folder: the photos used to be deleted."""
    out = tmp_path / "out"
    photos = [_image(out / f"photo{i}.png", seed=i) for i in range(2)]
    before = {p.name: p.read_bytes() for p in photos}
    (tmp_path / "in").mkdir()
    for p in photos:
        (tmp_path / "in" / p.name).symlink_to(p)
    code, err = _run(capsys, tmp_path / "in", "-o", out, *FAST, "--overwrite")
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in photos} == before
    assert (out / "cameras.json").exists()


def test_overwrite_refuses_to_replace_an_entry_holding_an_input(tmp_path: Path, capsys) -> None:
    """An input inside ``out/depth/`` (through a link): replacing ``depth/`` would delete it, so nothing runs."""
    out = tmp_path / "out"
    photo = _image(out / "depth" / "photo.png")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "photo.png").symlink_to(photo)
    before = _tree(tmp_path)
    code, err = _run(capsys, tmp_path / "in", "-o", out, *FAST, "--overwrite")
    _one_line(code, err, "holds the input")
    assert _tree(tmp_path) == before


def test_merge_protects_inputs_at_the_last_moment(tmp_path: Path) -> None:
    """The folder writer itself refuses to remove an entry that holds a protected input (checked again at the
    end, not only at start-up), and leaves the folder as it was."""
    out = tmp_path / "out"
    keep = _image(out / "depth" / "x.png")
    with pytest.raises(UserError, match="holds the input"):
        with atomic_dir(out, overwrite=True, entries=["depth"], protected=[keep]) as tmp:
            (tmp / "depth").mkdir()
    assert keep.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"] and _hidden(out) == []


# ------------------------------------------------------------------------------- 3. no silent replacement
@pytest.mark.parametrize("out_name", ["scene.ply", "cameras.json", "folder"])
def test_output_that_appears_during_the_run_is_kept(tmp_path: Path, capsys, monkeypatch, out_name: str) -> None:
    import app.engine.pipeline

    inputs = _inputs(tmp_path)
    out = tmp_path / out_name
    real = app.engine.pipeline.reconstruct_arrays

    def intruder(*args, **kwargs):
        recon = real(*args, **kwargs)
        if os.path.lexists(out):
            pass
        elif out_name == "folder":
            out.mkdir()
            (out / "theirs.txt").write_text("another run")
        else:
            out.write_text("another run")
        return recon

    monkeypatch.setattr(app.engine.pipeline, "reconstruct_arrays", intruder)
    code, err = _run(capsys, inputs, "-o", out, *FAST)
    _one_line(code, err, "appeared while this run was writing it")
    assert (out / "theirs.txt" if out_name == "folder" else out).read_text() == "another run"
    if out_name == "folder":
        assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert _hidden(tmp_path) == []
    code, err = _run(capsys, inputs, "-o", tmp_path / "second", *FAST, "--overwrite")  # sanity: still runs
    assert code == 0, err


def test_appeared_output_replaced_with_overwrite(tmp_path: Path, capsys, monkeypatch) -> None:
    import app.engine.pipeline

    inputs = _inputs(tmp_path)
    out = tmp_path / "scene.ply"
    real = app.engine.pipeline.reconstruct_arrays
    monkeypatch.setattr(app.engine.pipeline, "reconstruct_arrays", lambda *a, **k: (out.write_text("x"), real(*a, **k))[1])
    code, err = _run(capsys, inputs, "-o", out, *FAST, "--overwrite")
    assert code == 0, err
    assert out.read_bytes().startswith(b"ply") and _hidden(tmp_path) == []  # the file that appeared was replaced


def test_two_concurrent_runs_one_wins(tmp_path: Path) -> None:
    """Two runs writing one file: exactly one succeeds; the other says why, in one line."""
    inputs = _inputs(tmp_path)
    out = tmp_path / "scene.ply"
    cmd = [sys.executable, "-m", "app.cli", str(inputs), "-o", str(out), *FAST]
    procs = [subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, EXIT_USER_ERROR], results
    loser = next(err for code, err in results if code)
    _one_line(EXIT_USER_ERROR, loser, str(out))
    assert "already exists" in loser or "appeared while this run" in loser
    assert out.read_bytes().startswith(b"ply") and _hidden(tmp_path) == []


@pytest.mark.parametrize("fallback", [False, True], ids=["renameat2", "link-or-check"])
def test_rename_noreplace(tmp_path: Path, monkeypatch, fallback: bool) -> None:
    import mum.files

    if fallback:
        monkeypatch.setattr(mum.files, "_renameat2_noreplace", lambda src, dst: False)
    for existing in ("file", "empty folder", "dangling link"):
        src_file, src_dir = tmp_path / "f.tmp", tmp_path / "d.tmp"
        src_file.write_text("new")
        src_dir.mkdir()
        dst = tmp_path / "dst"
        if existing == "file":
            dst.write_text("old")
        elif existing == "empty folder":
            dst.mkdir()
        else:
            dst.symlink_to(tmp_path / "nowhere")
        for src in (src_file, src_dir):
            with pytest.raises(FileExistsError):
                rename_noreplace(src, dst)
            assert src.exists()
        assert os.path.lexists(dst) and (existing != "file" or dst.read_text() == "old")
        _remove(dst), _remove(src_file), _remove(src_dir)
    (tmp_path / "a").write_text("a")
    rename_noreplace(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").mkdir()
    rename_noreplace(tmp_path / "c", tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "d"] and (tmp_path / "b").read_text() == "a"


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif os.path.lexists(p):
        p.unlink()


def test_atomic_path_without_overwrite_keeps_what_appeared(tmp_path: Path) -> None:
    target = tmp_path / "scene.ply"
    with pytest.raises(UserError, match="appeared"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")
    assert target.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["scene.ply"]


def _age(path: Path, seconds: float = 600) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_stale_temporaries_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "scene.ply"
    stale_file = tmp_path / ".scene.ply.0123456789ab.ply"
    stale_dir = tmp_path / ".scene.ply.aaaaaaaaaaaa"
    fresh = tmp_path / ".scene.ply.bbbbbbbbbbbb.ply"
    locked = tmp_path / ".scene.ply.cccccccccccc.ply"
    unrelated = tmp_path / ".scene.ply.notours.ply"
    other_output = tmp_path / ".other.ply.dddddddddddd.ply"
    for p in (stale_file, fresh, locked, unrelated, other_output):
        p.write_text("partial")
    stale_dir.mkdir()
    (stale_dir / "depth").mkdir()
    for p in (stale_file, stale_dir, locked, unrelated, other_output):
        _age(p)
    fd = os.open(locked, os.O_RDONLY)  # a concurrent run still writing it holds its lock
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        removed = remove_stale_temporaries(out)
    finally:
        os.close(fd)
    assert sorted(p.name for p in removed) == sorted([stale_file.name, stale_dir.name])
    assert all(p.exists() for p in (fresh, locked, unrelated, other_output))
    check_output_path(out, overwrite=False)  # the next run sweeps the now unlocked one
    assert not locked.exists() and fresh.exists()


def test_temporary_of_a_killed_run_is_swept_by_the_next(tmp_path: Path, capsys) -> None:
    """``kill -9`` in the middle of a write leaves ``.scene.ply.<hex>.ply``; its lock dies with the process,
    and the next run writing that output removes it (once it is older than a minute)."""
    out = tmp_path / "scene.ply"
    code = (f"import os, signal\nfrom mum.files import atomic_path\nwith atomic_path({str(out)!r}) as tmp:\n"
            f"    tmp.write_bytes(b'x' * 1000)\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".scene.ply.")]
    assert len(left) == 1
    _age(left[0])
    code, err = _run(capsys, _inputs(tmp_path), "-o", out, *FAST)
    assert code == 0, err
    assert _hidden(tmp_path) == [] and out.exists()


def _default_signals() -> None:
    """In the child: the default dispositions, whatever the test runner inherited (``nohup``, a background job
    ignores SIGINT), so that the command installs its own handlers."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


_SLOW_EXPORT = """
import sys, time
import app.exports.project_formats
def slow(*args, **kwargs):
    print("SLOW-EXPORT", file=sys.stderr, flush=True)
    for _ in range(2400):  # short sleeps: a signal landing before one long sleep would wait for its end
        time.sleep(0.05)
app.exports.project_formats.{fn} = slow
from app.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig, out_name, fn", [(signal.SIGTERM, "out", "write_glb"),
                                               (signal.SIGHUP, "s.glb", "write_glb"),
                                               (signal.SIGINT, "c.ply", "write_ply")])
def test_signals_clean_up_temporaries(tmp_path: Path, sig: int, out_name: str, fn: str) -> None:
    """SIGTERM/SIGHUP (and Ctrl-C) during an export: one "interrupted" line, exit 143/129 (130), no temporaries
    left."""
    inputs = _inputs(tmp_path)
    out = tmp_path / out_name
    if fn == "write_ply":  # a slow writer *inside* the atomic temporary: it exists when the signal comes
        script = _SLOW_EXPORT.replace("def slow(*args, **kwargs):", "real = app.exports.project_formats.atomic_path\n"
                                      "def slow(path, cloud, overwrite=True):\n    with real(path) as tmp:\n"
                                      "        tmp.write_text('partial')\n        slow_inner()\n"
                                      "def slow_inner():").format(fn=fn)
    else:
        script = _SLOW_EXPORT.format(fn=fn)
    proc = subprocess.Popen([sys.executable, "-c", script, str(inputs), "-o", str(out), *FAST], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    try:
        line = proc.stderr.readline()
        assert "SLOW-EXPORT" in line, line + proc.stderr.read()
        if fn == "write_glb" and out_name == "out":
            assert any(p.name.startswith(".out.") for p in tmp_path.iterdir())  # the folder's temporary exists
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    _one_line(code, rest, "interrupted", status=EXIT_INTERRUPTED if sig == signal.SIGINT else 128 + sig)
    assert _hidden(tmp_path) == [] and not out.exists()


def test_ignored_sighup_stays_ignored() -> None:
    """Under ``nohup`` (SIGHUP ignored) the command keeps ignoring it."""
    from app.engine.runtime import signals_as_interrupt

    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, old)


# ------------------------------------------------------------------------------------------ 4. tracebacks
@pytest.mark.parametrize("where", ["input", "output", "output parent"])
def test_symlink_loop_is_one_line(tmp_path: Path, where: str) -> None:
    inputs = _inputs(tmp_path)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    argv = {"input": [loop, "-o", tmp_path / "o.ply"], "output": [inputs, "-o", loop],
            "output parent": [inputs, "-o", loop / "o.ply"]}[where]
    proc = _cli(*argv, *FAST)
    _one_line(proc.returncode, proc.stderr, "loop")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("option, value", [("--size", "99999999999999999999"), ("--size", "2147483648"),
                                           ("--size", "4097"), ("--max-pixels", "99999999999999999999")])
def test_huge_numbers_are_one_line(tmp_path: Path, option: str, value: str) -> None:
    proc = _cli(_inputs(tmp_path), "-o", tmp_path / "o.ply", *FAST, option, value)
    _one_line(proc.returncode, proc.stderr, option)
    assert not (tmp_path / "o.ply").exists()


@pytest.mark.parametrize("option", ["--max-frames", "--stride", "--max-points", "--chunk-size"])
def test_huge_counts_mean_all(tmp_path: Path, capsys, option: str) -> None:
    code, err = _run(capsys, _inputs(tmp_path), "-o", tmp_path / "o.ply", *FAST, option, "99999999999999999999")
    assert code == 0, err


def _can_drop_read_permission(folder: Path) -> list[str] | None:
    """The command prefix under which ``folder`` (mode 000) is unreadable: none for a normal user, ``setpriv``
    without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH for root; ``None`` when that cannot be arranged."""
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            return None
        prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "ls", str(folder)], capture_output=True)
    return prefix if probe.returncode != 0 else None


def test_unreadable_input_folder_is_one_line(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    inputs.chmod(0)
    try:
        prefix = _can_drop_read_permission(inputs)
        if prefix is None:
            pytest.skip("cannot make a folder unreadable here")
        proc = subprocess.run([*prefix, sys.executable, "-m", "app.cli", str(inputs), "-o", str(tmp_path / "o.ply"),
                               *FAST], capture_output=True, text=True, cwd=REPO, timeout=120)
    finally:
        inputs.chmod(0o755)
    _one_line(proc.returncode, proc.stderr, "Permission denied")
    assert not (tmp_path / "o.ply").exists()


class _InterruptedImport:
    """A meta-path finder that makes ``import pycolmap`` fail as a Ctrl-C during its C++ module's start does:
    pybind11's ImportError from the KeyboardInterrupt, then pycolmap's RuntimeError ("... pip install")."""

    def find_spec(self, name, path=None, target=None):
        if name != "pycolmap":
            return None
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as ki:
                raise ImportError("initialization failed") from ki
        except ImportError as ie:
            raise RuntimeError("Cannot import the C++ backend pycolmap._core.\nMake sure that you successfully "
                               "install the package with\n  $ python -m pip install pycolmap/") from ie


def test_ctrl_c_while_pycolmap_is_imported_says_interrupted(tmp_path: Path, capsys, monkeypatch) -> None:
    from mum.pycolmap_import import import_pycolmap

    inputs = _inputs(tmp_path)
    monkeypatch.delitem(sys.modules, "pycolmap", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptedImport(), *sys.meta_path])
    with pytest.raises(KeyboardInterrupt):
        import_pycolmap()
    code, err = _run(capsys, inputs, "-o", tmp_path / "out", *FAST)
    assert code == EXIT_INTERRUPTED and err == ["error: interrupted"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# ----------------------------------------------------------------------------------------- 6. smaller
@pytest.mark.parametrize("name", ["a\nb.png", "tab\there.png", "esc\x1b[31m.png", "sep\u2028.png"],
                         ids=["newline", "tab", "escape", "line-separator"])
def test_control_characters_in_names_are_refused(tmp_path: Path, capsys, name: str) -> None:
    _image(tmp_path / "in" / name)
    _image(tmp_path / "in" / "fine.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "out", *FAST)
    _one_line(code, err, "file name contains")
    assert not (tmp_path / "out").exists()


def test_newline_name_is_one_line_from_a_real_process(tmp_path: Path) -> None:
    _image(tmp_path / "in" / "a\nb.png")
    proc = _cli(tmp_path / "in", "-o", tmp_path / "out", *FAST)
    _one_line(proc.returncode, proc.stderr, "a\\nb.png: file name contains \\n")


def test_spaces_and_unicode_in_names_still_work(tmp_path: Path, capsys) -> None:
    _image(tmp_path / "in" / "IMG 001 été.png")
    _image(tmp_path / "in" / "b.png", seed=1)
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "out", *FAST)
    assert code == 0, err
    names = [c["name"] for c in json.loads((tmp_path / "out" / "cameras.json").read_text())["images"]]
    assert names == ["IMG 001 été.png", "b.png"]


@pytest.mark.parametrize("out_name", ["v1.json/", "scene.ply/", "model.v2/"])
def test_trailing_slash_means_a_folder(tmp_path: Path, capsys, out_name: str) -> None:
    code, err = _run(capsys, _inputs(tmp_path), "-o", f"{tmp_path}/{out_name}", *FAST)
    assert code == 0, err
    out = tmp_path / out_name.rstrip("/")
    assert out.is_dir() and {p.name for p in out.iterdir()} == {e.split("/")[0] for e in FOLDER_ENTRIES}


@pytest.mark.parametrize("make, needle", [
    (lambda out: (out / "depth").write_text("mine"), "depth: is not a folder"),
    (lambda out: ((out / "scene.ply").mkdir(), (out / "scene.ply" / "keep.txt").write_text("mine")), "is not a file"),
    (lambda out: ((out / "depth").mkdir(), (out / "depth" / "notes.txt").write_text("mine")), "holds notes.txt"),
    (lambda out: ((out / "sparse" / "0").mkdir(parents=True), (out / "sparse" / "0" / "project.ini").write_text("x")),
     "holds project.ini"),
    (lambda out: ((out.parent / "mine").mkdir(), (out / "depth").symlink_to(out.parent / "mine")), "symbolic link"),
], ids=["file-named-depth", "folder-named-scene.ply", "user-file-in-depth", "user-file-in-sparse-0", "link"])
def test_overwrite_refuses_entries_this_command_did_not_write(tmp_path: Path, capsys, make, needle: str) -> None:
    """``--overwrite`` replaces the folder's exports whole; where one of those names holds something this command
    never writes (a user's file, a folder where a file goes, a link), nothing runs and nothing changes."""
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    make(out)
    before = _tree(tmp_path)
    code, err = _run(capsys, inputs, "-o", out, *FAST, "--overwrite")
    _one_line(code, err, needle)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("cameras", ["cameras.json", "transforms.json", "sparse/0"])
def test_overwrite_never_replaces_the_cameras_file_it_reads(tmp_path: Path, capsys, cameras: str) -> None:
    """``-o out/ --cameras out/sparse/0 --overwrite`` used to replace the given cameras with the run's own."""
    inputs = _inputs(tmp_path)
    out = tmp_path / "out"
    code, err = _run(capsys, inputs, "-o", out, *FAST)
    assert code == 0, err
    before = _tree(tmp_path)
    code, err = _run(capsys, inputs, "-o", out, *FAST, "--cameras", out / cameras, "--overwrite")
    _one_line(code, err, "input")
    assert _tree(tmp_path) == before
    code, err = _run(capsys, inputs, "-o", out / cameras, *FAST, "--cameras", out / cameras, "--overwrite")
    _one_line(code, err, "input")
    assert _tree(tmp_path) == before


def test_scratch_folders_of_killed_runs_are_swept_but_live_ones_kept(tmp_path: Path, monkeypatch) -> None:
    """``$TMPDIR/mum-frames-*`` (a video's decoded frames) and ``mum-sfm-*`` of a run killed outright stayed for
    good; the next run removes those whose lock no process holds once they are a minute old."""
    import tempfile

    from mum.files import SCRATCH_LOCK, scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "mum-frames-dead"
    dead.mkdir()
    (dead / SCRATCH_LOCK).write_text("")
    (dead / "frame_000000.png").write_bytes(b"frame")
    young = tmp_path / "mum-frames-young"  # maybe a run that has just started
    young.mkdir()
    (young / SCRATCH_LOCK).write_text("")
    foreign = tmp_path / "mum-frames-foreign"  # not made by scratch_folder (no lock file)
    foreign.mkdir()
    other = tmp_path / "mum-sfm-dead"
    other.mkdir()
    (other / SCRATCH_LOCK).write_text("")
    for p in (dead, foreign, other):
        _age(p)
    with scratch_folder("mum-frames-") as live:
        assert not dead.exists()  # swept on the way in
        assert young.exists() and foreign.exists() and other.exists()  # other prefixes are other sweeps'
        _age(live)
        with scratch_folder("mum-frames-") as second:
            assert live.exists() and second != live  # a live run's folder, however old, is kept
    assert not live.exists() and not second.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare to mount a file system")
def test_overwrite_into_a_folder_that_is_a_mount_point(tmp_path: Path) -> None:
    """``-o /volume/ --overwrite`` where the folder is a mount point (a container's volume): the exports were
    staged beside it, and renaming them in failed at the very end ('Invalid cross-device link'). Staged inside
    it now; the user's file there stays."""
    inputs = _inputs(tmp_path)
    out = tmp_path / "volume"
    out.mkdir()
    cli = " ".join([sys.executable, "-m", "app.cli", str(inputs), "-o", f"{out}/", *FAST, "--overwrite"])
    script = (f"mount -t tmpfs -o size=20m tmpfs {out} || exit 99; echo mine > {out}/keep.txt; cd {REPO}; "
              f"{cli} && {cli}; echo rc=$?; ls -A {out}; cat {out}/keep.txt")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if proc.returncode == 99 or "unshare:" in proc.stderr:
        pytest.skip(f"cannot mount here: {proc.stderr.strip()[:200]}")
    lines = proc.stdout.split()
    assert "rc=0" in lines, proc.stdout + proc.stderr
    assert {"scene.ply", "scene.glb", "cameras.json", "depth", "sparse", "transforms.json", "keep.txt"} <= set(lines)
    assert lines[-1] == "mine" and not [n for n in lines if n.startswith(".")], lines
