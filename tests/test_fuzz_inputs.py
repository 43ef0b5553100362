"""Property-based fuzzing (hypothesis) of what users hand the command: image bytes and headers for the loader
(:func:`mum.io.read_image`), and command lines for ``mum-reconstruct``'s argument checks and runs.

Properties: never a traceback (an image, or one ``error:`` line: a :class:`~mum.errors.UserError`, or
argparse's usage error, also one line), never a warning printed, never a file written outside the output, never
an input touched. Bounded: a few dozen examples each (about 3 s in all), small images, the network alone at a tiny size;
``MUM_FUZZ_SCALE=50`` multiplies the examples for a deeper search.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.cli import FOLDER_ENTRIES, build_parser, check_arguments, main
from mum.io import input_files, read_image
from mum.errors import UserError
from mum.files import check_inputs_kept

SCALE = float(os.environ.get("MUM_FUZZ_SCALE", "1"))  # e.g. MUM_FUZZ_SCALE=50 for a deeper search
FUZZ = settings(max_examples=int(60 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "CMYK"]
LOADER_LIMIT = 200_000  # pixels: fuzzed headers may claim anything, decoding stays cheap


def _encode(fmt: str, mode: str, w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):  # a mode this format cannot hold
        buf = io.BytesIO()
        img.convert("RGB").save(buf, fmt)
    return buf.getvalue()


def _png_with_size(w: int, h: int, bit_depth: int, color: int, body: bytes) -> bytes:
    """A PNG whose header claims ``w`` x ``h`` (anything), with ``body`` as its (compressed) pixel data."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


@st.composite
def image_files(draw) -> tuple[str, bytes]:
    """(suffix, bytes): a real small image, then maybe truncated or with bytes overwritten; or a PNG header
    claiming any size; or a known magic number followed by noise; or noise."""
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "truncated", "header", "magic", "noise"]))
    if kind == "header":
        w, h = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
        if draw(st.booleans()):
            w, h = draw(st.integers(0, 3000)), draw(st.integers(0, 3000))
        depth, color = draw(st.sampled_from([(1, 0), (8, 0), (8, 2), (16, 2), (8, 6), (8, 3), (3, 0), (8, 9)]))
        return ".png", _png_with_size(w, h, depth, color, draw(st.binary(max_size=64)))
    if kind == "magic":
        magic = draw(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*",
                                      b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"GIF89a"]))
        return draw(st.sampled_from(list(FORMATS.values()))), magic + draw(st.binary(max_size=300))
    if kind == "noise":
        return draw(st.sampled_from(list(FORMATS.values()))), draw(st.binary(max_size=300))
    fmt = draw(st.sampled_from(list(FORMATS)))
    data = _encode(fmt, draw(st.sampled_from(MODES)), draw(st.integers(1, 24)), draw(st.integers(1, 24)),
                   draw(st.integers(0, 3)))
    if kind == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "mutated":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    return FORMATS[fmt], data


@contextlib.contextmanager
def no_warnings_escape():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            rel = p.relative_to(root).as_posix()
            out[rel] = (p.read_bytes() if p.is_file() and not p.is_symlink() else None, st_.st_mtime_ns, st_.st_mode)
    return out


@FUZZ
@given(image_files())
def test_loader_never_raises_anything_but_a_one_line_user_error(file: tuple[str, bytes]) -> None:
    suffix, data = file
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        before = _snapshot(Path(d))
        with no_warnings_escape():
            try:
                arr = read_image(path, max_pixels=LOADER_LIMIT)
            except UserError as exc:
                text = str(exc)
                assert text.startswith(str(path)) and "\n" not in text, text
            else:
                assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
                assert arr.shape[0] >= 2 and arr.shape[1] >= 2 and arr.shape[0] * arr.shape[1] <= LOADER_LIMIT
        assert _snapshot(Path(d)) == before  # the input is never touched


# ------------------------------------------------------------------------------------------ command lines
OUTPUTS = ["out.ply", "out.glb", "cameras.json", "outdir", "outdir/", "v1.json/", "model.v2", "model.v2/",
           "existing", "existing/", "file.ply", "file.ply/", "", ".", "..", "in", "in/v0.png", "loop", "loop/x.ply",
           "deep/er/x.ply", "file.ply/x.ply", "out.obj", "a\nb.ply", "dangling.ply"]
INPUTS = ["in", "in/v0.png", "in/*.png", "in/*.jpg", "missing", "loop", "in/../in", "file.ply", "existing", "",
          "dangling.ply", "in/v0.png\n"]
NUMBERS = st.one_of(st.integers(-(10**25), 10**25).map(str), st.sampled_from(["0", "1", "-1", "2147483648",
                    "99999999999999999999", "1e3", "abc", "", " 5", "0x10", "٣"]))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["nan", "inf", "-inf", "1e999", "50", "99.999", "100", "-0.0", "x"]))


@st.composite
def command_lines(draw) -> list[str]:
    argv = draw(st.lists(st.one_of(st.sampled_from(INPUTS), st.text(max_size=8)), min_size=0, max_size=3))
    argv += ["-o", draw(st.one_of(st.sampled_from(OUTPUTS), st.text(max_size=10)))] if draw(st.integers(0, 9)) else []
    for option in ("--size", "--max-frames", "--stride", "--max-points", "--chunk-size", "--max-pixels"):
        if draw(st.integers(0, 3)) == 0:
            argv += [option, draw(NUMBERS)]
    if draw(st.booleans()):
        argv += ["--conf-percentile", draw(FLOATS)]
    for flag in ("--overwrite", "--mask-background", "--json"):
        if draw(st.booleans()):
            argv.append(flag)
    if draw(st.integers(0, 4)) == 0:
        argv += ["--points-from", draw(st.sampled_from(["depth", "pointmap", "mesh", ""]))]
    if draw(st.integers(0, 4)) == 0:
        argv += ["--device", draw(st.sampled_from(["cpu", "auto", "cuda:7", "tpu", "", "cpu:0"]))]
    return [a for a in argv if "\x00" not in a]  # a real command line cannot hold NUL


@contextlib.contextmanager
def _chdir(path: str):
    """``contextlib.chdir`` (Python 3.11+) for 3.10 too."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _sandbox(root: Path) -> None:
    for i in range(2):
        (root / "in").mkdir(exist_ok=True)
        Image.fromarray(np.full((24, 32, 3), 60 * i, np.uint8)).save(root / "in" / f"v{i}.png")
    (root / "existing").mkdir()
    (root / "existing" / "keep.txt").write_text("precious")
    (root / "file.ply").write_text("precious")
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling.ply").symlink_to(root / "nowhere")


@FUZZ
@given(command_lines())
def test_argument_checks_never_traceback_nor_touch_files(argv: list[str]) -> None:
    """Parsing and every check made before images are loaded: a usage error (exit 2) or one
    ``UserError`` line, and no change on disk at all."""
    with tempfile.TemporaryDirectory() as d, _chdir(d):
        root = Path(d)
        _sandbox(root)
        before = _snapshot(root)
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 2
            return
        finally:
            assert _snapshot(root) == before
        try:
            out, kind = check_arguments(args)
            inputs = input_files(args.inputs)
            check_inputs_kept([out / e for e in FOLDER_ENTRIES] if kind == "" else [out], inputs)
        except UserError as exc:
            assert str(exc) and "Traceback" not in str(exc)
        assert _snapshot(root) == before


def _parse(err: str) -> list[str]:
    return [line for line in err.strip().splitlines() if line]


@st.composite
def run_command_lines(draw) -> list[str]:
    """Mostly valid command lines (so that the network runs), with now and then a value out of range."""
    small = st.one_of(st.integers(1, 4).map(str), st.sampled_from(["0", "99999999999999999999"]))
    argv = draw(st.lists(st.sampled_from(["in", "in/*.png", "in/v0.png", "in/v1.png"]), min_size=1, max_size=2))
    argv += ["-o", draw(st.sampled_from(["out.ply", "out.glb", "cameras.json", "outdir", "outdir/", "v1.json/",
                                          "existing", "file.ply", "deep/er/x.ply", "a b.ply", "dangling.ply"]))]
    for option, values in (("--max-frames", small), ("--stride", small), ("--chunk-size", small),
                           ("--max-points", st.one_of(st.integers(1, 10**6).map(str), small)),
                           ("--conf-percentile", st.one_of(st.floats(0, 99.99).map(repr), FLOATS)),
                           ("--points-from", st.sampled_from(["depth", "pointmap"]))):
        if draw(st.integers(0, 2)) == 0:
            argv += [option, draw(values)]
    for flag in ("--overwrite", "--mask-background", "--json"):
        if draw(st.integers(0, 2)) == 0:
            argv.append(flag)
    return argv


@settings(max_examples=int(15 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(run_command_lines(), st.lists(image_files(), min_size=0, max_size=2))
def test_whole_runs_write_only_their_output(argv: list[str], extra_images: list[tuple[str, bytes]]) -> None:
    """Whole runs (the network alone, 28 px) on fuzzed command lines and fuzzed images beside good ones:
    exit 0, or 2 with one ``error:`` line; the inputs stay as they were and nothing but the output appears."""
    with tempfile.TemporaryDirectory() as d, _chdir(d):
        root = Path(d)
        _sandbox(root)
        for i, (suffix, data) in enumerate(extra_images):
            (root / "in" / f"fuzz{i}{suffix}").write_bytes(data)
        before = _snapshot(root)
        argv = [*argv, "--fast", "--model", "mum-tiny", "--size", "28", "--quiet", "--max-pixels", str(LOADER_LIMIT)]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), no_warnings_escape():
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's usage error ("--conf-percentile -inf" reads as an option)
                assert exc.code == 2 and _snapshot(root) == before
                usage = _parse(err.getvalue())
                assert len(usage) == 1 and usage[0].startswith("error: "), usage
                event("usage error")
                return
        lines = _parse(err.getvalue())
        event(f"exit {code}")
        after = _snapshot(root)
        assert code in (0, 2), (code, lines)
        if code == 2:
            assert len(lines) == 1 and lines[0].startswith("error: "), lines
            assert after == before
            return
        # at most the line that says the cloud is empty (--mask-background on the sandbox's plain images)
        assert lines == [] or (len(lines) == 1 and lines[0].startswith("warning: the point cloud is empty")), lines
        args = build_parser().parse_args(argv)
        out = Path(args.output).absolute()
        for rel, state in before.items():  # every input, every bystander: as it was, unless it is the output
            p = (root / rel).absolute()
            if p == out or out in p.parents:
                continue
            assert after.get(rel) == state, rel
        for rel in after.keys() - before.keys():  # the output, and the folders it goes in
            p = (root / rel).absolute()
            assert p == out or out in p.parents or (p in out.parents and p.is_dir()), f"{rel} written outside {out}"


def test_fuzz_strategies_produce_each_kind() -> None:
    """The image strategy covers valid images of every format (a guard against a silently narrowed fuzz)."""
    for fmt in FORMATS:
        for mode in MODES:
            data = _encode(fmt, mode, 5, 4, 0)
            with Image.open(io.BytesIO(data)) as img:
                assert img.size == (5, 4)
    with pytest.raises(UserError):
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "h.png").write_bytes(_png_with_size(100_000, 100_000, 8, 2, b""))
            read_image(Path(d) / "h.png", max_pixels=LOADER_LIMIT)
