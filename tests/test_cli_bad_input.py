"""`mum-reconstruct` on bad or unusual input: each case either works (odd but valid images) or ends with one
``error: ...`` line and a non-zero exit, never a traceback, and never leaves a partial or overwritten output.

Runs the CLI in-process (``app.cli.main``) with a tiny random-weight model at 64 px; one subprocess case
checks what a user really sees on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from app.cli import main

REPO = Path(__file__).resolve().parents[1]
FAST = ["--model", "mum-tiny", "--size", "64", "--quiet"]


def _image(path: Path, size: tuple[int, int] = (48, 32), mode: str = "RGB", **save_kw) -> Path:
    """A small noisy image of ``size`` (W, H) in PIL ``mode``, saved to ``path``."""
    rng = np.random.default_rng(len(str(path)))
    w, h = size
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **save_kw)
    return path


def _run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, list[str]]:
    """Exit code and stderr lines of one in-process run (a traceback would fail the test by propagating)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def _assert_one_line_error(code: int, err: list[str], needle: str) -> None:
    assert code != 0
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0], err[0]


def _cameras(capsys: pytest.CaptureFixture, inputs: Path, out: Path) -> list[dict]:
    """Run to a ``cameras.json`` and return its images."""
    code, err = _run(capsys, inputs, "-o", out, *FAST)
    assert code == 0, err
    return json.loads(out.read_text())["images"]


# -------------------------------------------------------------------------------- refused with one line
def _empty_folder(d: Path) -> Path:
    (d / "in").mkdir()
    return d / "in"


def _folder_without_images(d: Path) -> Path:
    (d / "in").mkdir()
    (d / "in" / "notes.txt").write_text("no pictures here")
    return d / "in"


def _truncated_image(d: Path) -> Path:
    p = _image(d / "in" / "t.jpg", (64, 64))
    p.write_bytes(p.read_bytes()[:300])
    return d / "in"


def _text_named_jpg(d: Path) -> Path:
    (d / "in").mkdir()
    (d / "in" / "photo.jpg").write_text("this is not a JPEG\n")
    return d / "in"


def _zero_byte(d: Path) -> Path:
    _image(d / "in" / "a.png")
    (d / "in" / "b.png").write_bytes(b"")
    return d / "in"


def _garbage_video(d: Path) -> Path:
    (d / "clip.mp4").write_bytes(os.urandom(2048))
    return d / "clip.mp4"


def _video_without_frames(d: Path) -> Path:
    import cv2

    path = d / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.release()  # a container with no frames
    if not path.exists():
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    "make_input, needle",
    [
        (_empty_folder, "no images"),
        (_folder_without_images, "no images"),
        (_truncated_image, "truncated or corrupt"),
        (_text_named_jpg, "not a readable image"),
        (_zero_byte, "empty"),
        (_garbage_video, "video"),
        (_video_without_frames, "video"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_unreadable_input_is_one_line(tmp_path: Path, capsys, make_input: Callable[[Path], Path], needle: str) -> None:
    out = tmp_path / "out" / "scene.ply"
    code, err = _run(capsys, make_input(tmp_path), "-o", out, *FAST)
    _assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_error_seen_from_a_real_process(tmp_path: Path) -> None:
    """What a user sees: exit 2 and exactly one ``error:`` line on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", str(_truncated_image(tmp_path)), "-o", str(tmp_path / "o.ply"), *FAST],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.ply").exists()


@pytest.mark.parametrize("argv, needle", [(["in", "-o", "o.ply", "--size", "abc"], "--size: invalid int value"),
                                          (["in", "-o", "o.ply", "--max-frames", "nan"], "--max-frames"),
                                          (["in", "-o", "o.ply", "--no-such-option"], "unrecognized arguments"),
                                          (["in"], "required: -o/--output")])
def test_malformed_options_are_one_line_from_a_real_process(tmp_path: Path, argv: list[str], needle: str) -> None:
    """argparse's own errors too: exit 2 and one ``error:`` line (it used to print the ~11-line usage first)."""
    proc = subprocess.run([sys.executable, "-m", "app.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: "), proc.stderr
    assert needle in proc.stderr and "mum-reconstruct --help" in proc.stderr


def test_truncated_video_is_one_line_from_a_real_process(tmp_path: Path) -> None:
    """OpenCV's AVI parser prints its own complaint straight to stderr; the user sees only our line."""
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(8):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    video.write_bytes(video.read_bytes()[:300])  # cut inside the headers
    proc = subprocess.run([sys.executable, "-m", "app.cli", str(video), "-o", str(tmp_path / "o.ply"), *FAST],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: "), proc.stderr


# ------------------------------------------------------------------------------------ unusual but valid
@pytest.mark.parametrize(
    "mode, name",
    [("L", "gray.png"), ("I;16", "depth16.png"), ("RGBA", "alpha.png"), ("CMYK", "print.jpg"), ("P", "palette.png")],
)
def test_image_modes_work(tmp_path: Path, capsys, mode: str, name: str) -> None:
    img = _image(tmp_path / "in" / name, (48, 32), mode)
    with Image.open(img) as check:
        assert check.mode == mode
    cams = _cameras(capsys, img.parent, tmp_path / "cameras.json")
    assert [(c["name"], c["width"], c["height"]) for c in cams] == [(name, 48, 32)]


def test_exif_rotated_photo_reports_display_size(tmp_path: Path, capsys) -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # shown rotated by 90°: 32 wide, 48 high
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "r.jpg", exif=exif)
    cams = _cameras(capsys, tmp_path / "in", tmp_path / "cameras.json")
    assert (cams[0]["width"], cams[0]["height"]) == (32, 48)
    K = np.array(cams[0]["K"])
    assert 0 < K[0, 2] < 32 and 0 < K[1, 2] < 48  # principal point inside the rotated image


def test_mixed_sizes_and_aspects_keep_each_size(tmp_path: Path, capsys) -> None:
    sizes = {"a.png": (64, 48), "b.jpg": (40, 60), "c.png": (50, 50), "d.png": (120, 30)}
    for name, size in sizes.items():
        _image(tmp_path / "in" / name, size)
    cams = _cameras(capsys, tmp_path / "in", tmp_path / "cameras.json")
    assert {c["name"]: (c["width"], c["height"]) for c in cams} == sizes


def test_single_image_gives_every_export(tmp_path: Path, capsys) -> None:
    _image(tmp_path / "in" / "only.png", (64, 48))
    code, err = _run(capsys, tmp_path / "in" / "only.png", "-o", tmp_path / "out", *FAST)
    assert code == 0, err
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"scene.ply", "scene.glb", "cameras.json", "depth"}


def test_12000_px_image_is_quick(tmp_path: Path, capsys) -> None:
    """A 12000 × 8000 photo (96 Mpx) is read, reduced and exported in seconds, with its full size recorded."""
    (tmp_path / "in").mkdir()
    Image.new("RGB", (12000, 8000), (90, 120, 150)).save(tmp_path / "in" / "huge.jpg", quality=70)
    start = time.perf_counter()
    cams = _cameras(capsys, tmp_path / "in", tmp_path / "cameras.json")
    assert time.perf_counter() - start < 30
    assert (cams[0]["width"], cams[0]["height"]) == (12000, 8000)


# ------------------------------------------------------------------------------------------- weights
def _corrupt_weights(d: Path) -> Path:
    (d / "bad.safetensors").write_bytes(b"\x00\x01not safetensors" * 4)
    return d / "bad.safetensors"


def _truncated_weights(d: Path) -> Path:
    import heads

    path = heads.save_model(heads.load_model("mum-tiny", device="cpu"), d / "tiny.safetensors")
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)


@pytest.mark.parametrize(
    "make_weights",
    [lambda d: d / "missing.safetensors", _corrupt_weights, _truncated_weights],
    ids=["missing", "corrupt", "truncated"],
)
def test_bad_weights_are_one_line(tmp_path: Path, capsys, make_weights: Callable[[Path], Path]) -> None:
    weights = make_weights(tmp_path)
    _image(tmp_path / "in" / "a.png")
    out = tmp_path / "scene.ply"
    code, err = _run(capsys, tmp_path / "in", "-o", out, *FAST, "--weights", weights)
    _assert_one_line_error(code, err, weights.name)
    assert not out.exists()


def test_weights_with_a_checkpoint_path_is_one_line(tmp_path: Path, capsys) -> None:
    _image(tmp_path / "in" / "a.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "s.ply", "--model", tmp_path / "m.safetensors",
                     "--weights", tmp_path / "w.safetensors", "--quiet")
    _assert_one_line_error(code, err, "weights")


# -------------------------------------------------------------------------------------------- output
@pytest.mark.parametrize("out", ["blocker/scene.ply", "blocker/deeper/scene.ply", "blocker/outdir"])
def test_output_under_a_regular_file(tmp_path: Path, capsys, out: str) -> None:
    """Root ignores permission bits, so a parent that is a file is the unwritable path that always works."""
    _image(tmp_path / "in" / "a.png")
    (tmp_path / "blocker").write_text("keep me")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / out, *FAST)
    _assert_one_line_error(code, err, "blocker")
    assert (tmp_path / "blocker").read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_in_read_only_folder(tmp_path: Path, capsys) -> None:
    _image(tmp_path / "in" / "a.png")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "ro" / "scene.ply", *FAST)
        # the read-only folder itself as the output: refused before the run, not at its end
        code_folder, err_folder = _run(capsys, tmp_path / "in", "-o", tmp_path / "ro", *FAST, "--overwrite")
    finally:
        (tmp_path / "ro").chmod(0o700)
    _assert_one_line_error(code, err, "ro")
    _assert_one_line_error(code_folder, err_folder, "folder is not writable")


@pytest.mark.parametrize("out", ["scene.ply", "scene.glb", "cameras.json", "outdir"])
def test_existing_output_untouched_without_overwrite(tmp_path: Path, capsys, out: str) -> None:
    _image(tmp_path / "in" / "a.png")
    target = tmp_path / out
    if target.suffix:
        target.write_bytes(b"precious")
    else:
        target.mkdir()
        (target / "keep.txt").write_bytes(b"precious")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    code, err = _run(capsys, tmp_path / "in", "-o", target, *FAST)
    _assert_one_line_error(code, err, "--overwrite")
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


# -------------------------------------------------------------------------------------------- device
def test_cuda_without_gpu(tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    _image(tmp_path / "in" / "a.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "s.ply", *FAST, "--device", "cuda")
    _assert_one_line_error(code, err, "CUDA")
    assert not (tmp_path / "s.ply").exists()


def test_unknown_device(tmp_path: Path, capsys) -> None:
    _image(tmp_path / "in" / "a.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "s.ply", *FAST, "--device", "tpu9")
    _assert_one_line_error(code, err, "tpu9")


# ------------------------------------------------------------------------- outputs that would lose data
@pytest.mark.parametrize("out, needle", [("", "the output path is empty"),
                                         (".", ".: is the current folder or one above it"),
                                         ("..", "..: is the current folder or one above it")])
def test_output_never_the_current_folder_or_above(tmp_path: Path, capsys, monkeypatch, out: str, needle: str) -> None:
    """``-o ""`` / ``-o .`` with --overwrite used to empty the current folder before failing."""
    _image(tmp_path / "work" / "in" / "a.png")
    (tmp_path / "work" / "keep.txt").write_text("precious")
    monkeypatch.chdir(tmp_path / "work")
    code, err = _run(capsys, "in", "-o", out, *FAST, "--overwrite")
    _assert_one_line_error(code, err, needle)
    assert code == 2
    assert (tmp_path / "work" / "keep.txt").read_text() == "precious" and (tmp_path / "work" / "in" / "a.png").exists()


@pytest.mark.parametrize("out", ["in", "."])
def test_output_never_replaces_the_inputs(tmp_path: Path, capsys, out: str) -> None:
    _image(tmp_path / "in" / "a.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / out, *FAST, "--overwrite")
    _assert_one_line_error(code, err, "input")
    assert (tmp_path / "in" / "a.png").exists()


@pytest.mark.parametrize("out", ["scene.obj", "photo.png"])
def test_unknown_output_suffix_is_refused(tmp_path: Path, capsys, out: str) -> None:
    """A typo or an image name used to become a folder of exports (replacing the image with --overwrite)."""
    _image(tmp_path / "in" / "a.png")
    _image(tmp_path / "photo.png")
    before = (tmp_path / "photo.png").read_bytes()
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / out, *FAST, "--overwrite")
    _assert_one_line_error(code, err, "unknown output type")
    assert (tmp_path / "photo.png").read_bytes() == before and not (tmp_path / "scene.obj").exists()


def test_same_file_names_in_two_folders_stay_apart(tmp_path: Path, capsys) -> None:
    """``a/x.png`` and ``b/x.png``: distinct view names and depth files (one used to overwrite the other)."""
    _image(tmp_path / "a" / "x.png")
    _image(tmp_path / "b" / "x.png", size=(40, 30))
    code, err = _run(capsys, tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", *FAST)
    assert code == 0, err
    names = [c["name"] for c in json.loads((tmp_path / "out" / "cameras.json").read_text())["images"]]
    assert names == ["a/x.png", "b/x.png"]
    assert sorted(p.name for p in (tmp_path / "out" / "depth").glob("*.depth.npy")) == ["a_x.depth.npy", "b_x.depth.npy"]


def test_names_that_flatten_alike_keep_their_own_depth_files(tmp_path: Path, capsys) -> None:
    """``a/b.png`` and ``a_b.png`` both flatten to ``a_b`` (and ``a_b.png`` with the extension): one view's depth
    files used to replace the other's. Each view gets its own, and ``depth_scale.json`` names them."""
    names = ["a/b.png", "a_b.png", "c.png", "x/b.png"]
    for k, rel in enumerate(names):
        _image(tmp_path / "r" / rel, size=(40 + 4 * k, 30))  # a width per view: each file tells whose it is
    code, err = _run(capsys, *[tmp_path / "r" / n for n in names], "-o", tmp_path / "out", *FAST)
    assert code == 0, err
    scale = json.loads((tmp_path / "out" / "depth" / "depth_scale.json").read_text())
    stems = scale["files"]
    assert sorted(stems) == sorted(scale["png_depth_unit"]) and len(set(stems.values())) == 4
    views = {c["name"]: c for c in json.loads((tmp_path / "out" / "cameras.json").read_text())["images"]}
    for name, stem in stems.items():
        depth = np.load(tmp_path / "out" / "depth" / f"{stem}.depth.npy")
        assert depth.shape == (views[name]["height"], views[name]["width"])  # each file is its own view's
        assert (tmp_path / "out" / "depth" / f"{stem}.conf.npy").exists()
        assert (tmp_path / "out" / "depth" / f"{stem}.depth.png").exists()
    assert len(list((tmp_path / "out" / "depth").glob("*.depth.npy"))) == 4
