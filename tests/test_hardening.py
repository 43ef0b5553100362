"""Issue 26 ("nothing lost, nothing exhausted, round two"): one regression test per row of what the second
adversarial pass found, numbered as in the issue. The fuzzing of the same readers is
``tests/test_fuzz_readers.py``; SIGTERM at every stage is ``tests/test_signals.py``; the web app's rows are in
``tests/test_web_hardening.py``.

Every refusal is one ``error:`` line naming the file and entry, exit status 2, nothing written. The network
runs alone (``--fast``) with the tiny random-weight model at 64 px unless the row is about the default path.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.exports import project_formats as export
from app.exports import colmap_nerfstudio as export_formats
from app.cli import main
from tests.test_export import make_recon
from tests.test_fuzz_readers import memory_cap

FAST = ["--fast", "--model", "mum-tiny", "--size", "64", "--quiet"]
SIZE = (48, 32)


def _image(path: Path, seed: int = 0, size: tuple[int, int] = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _run(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def _one_line(code: int, err: list[str], *needles: str) -> None:
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err[0]


@pytest.fixture()
def views(tmp_path) -> tuple[Path, object]:
    """Three 48 x 32 images and a reconstruction whose cameras fit them (``recon.names`` = the file names)."""
    for i in range(3):
        _image(tmp_path / "in" / f"v{i}.png", seed=i)
    recon = make_recon()
    recon.names = [f"v{i}.png" for i in range(3)]
    (w, h), recon.image_sizes = recon.image_sizes[0], [SIZE] * 3
    recon.intrinsics[:, 0] *= SIZE[0] / w
    recon.intrinsics[:, 1] *= SIZE[1] / h
    return tmp_path / "in", recon


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------- rows 1-3: cameras files
def test_row1_deeply_nested_json_is_one_line(views, tmp_path, capsys):
    """Row 1: a ``--cameras`` JSON nested 100,000 levels deep was a RecursionError traceback."""
    inputs, _ = views
    for text in ("[" * 100_000 + "]" * 100_000, '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}",
                 '{"images": [{"name": "v0.png", "K": ' + "[" * 40 + "]" * 40 + "}]}"):
        cams = _write(tmp_path / "deep.json", text)
        code, err = _run(capsys, inputs, "-o", tmp_path / "o.ply", "--cameras", cams, *FAST)
        _one_line(code, err, str(cams), "nested too deeply")
    assert not (tmp_path / "o.ply").exists()


def _cameras_json(recon) -> dict:
    return export.cameras_dict(recon)


def _demo_layout(recon) -> dict:
    out = {}
    for name, (w, h), K, T in zip(recon.names, recon.image_sizes, recon.intrinsics, recon.cam_from_world):
        K = K.copy()
        K[:2, 2] += 0.5
        out[name] = {"width": w, "height": h, "intrinsic": K.tolist(), "extrinsic": T.tolist()}
    return {"cameras": out}


def _transforms(recon) -> dict:
    return export_formats.transforms_dict(recon)


ROW2 = {  # case: (layout, change to the document, JSON text replacements, what the message names)
    "width 1e400": ("cameras", lambda d: d["images"][0].update(width="@BIG@"), ('"@BIG@"', "1e400"), "images[0]"),
    "width NaN": ("cameras", lambda d: d["images"][1].update(width=float("nan")), (), "images[1]"),
    "empty cameras list": ("demo", lambda d: d.update(cameras=[]), (), "'cameras' is not an object"),
    "cameras a number": ("demo", lambda d: d.update(cameras=5), (), "'cameras' is not an object"),
    "intrinsic 2x2": ("demo", lambda d: d["cameras"]["v1.png"].update(intrinsic=[[1, 0], [0, 1]]), (),
                      "cameras['v1.png']"),
    "intrinsic 1-D": ("demo", lambda d: d["cameras"]["v0.png"].update(intrinsic=[1, 2, 3]), (), "cameras['v0.png']"),
    "demo width 1e400": ("demo", lambda d: d["cameras"]["v0.png"].update(width="@BIG@"), ('"@BIG@"', "1e400"),
                         "cameras['v0.png']"),
    "frame a number": ("transforms", lambda d: d["frames"].__setitem__(1, 7), (), "frames[1]"),
    "file_path a number": ("transforms", lambda d: d["frames"][0].update(file_path=3), (), "frames[0]"),
    "file_path null": ("transforms", lambda d: d["frames"][0].update(file_path=None), (), "frames[0]"),
    "camera_angle_x 0": ("transforms", lambda d: [f.pop("fl_x") for f in d["frames"]] and d.update(camera_angle_x=0),
                         (), "camera_angle_x"),
    "camera_angle_x wide": ("transforms", lambda d: [f.pop("fl_x") for f in d["frames"]]
                            and d.update(camera_angle_x="wide"), (), "camera_angle_x"),
    "fl_x abc": ("transforms", lambda d: d["frames"][2].update(fl_x="abc"), (), "frames[2]"),
    "fl_x list": ("transforms", lambda d: d["frames"][2].update(fl_x=[1, 2]), (), "frames[2]"),
    "w 1e400": ("transforms", lambda d: d["frames"][0].update(w="@BIG@"), ('"@BIG@"', "1e400"), "frames[0]"),
}
LAYOUTS = {"cameras": (_cameras_json, "cameras.json"), "demo": (_demo_layout, "cameras_reference.json"),
           "transforms": (_transforms, "transforms.json")}


@pytest.mark.parametrize("case", list(ROW2))
def test_row2_malformed_cameras_files_are_one_line(views, tmp_path, capsys, case):
    """Row 2: wrong types, 1e400, NaN, empty or scalar containers, matrices of the wrong shape, a frame that is a
    number, a bad ``camera_angle_x`` or ``fl_x`` gave OverflowError/ValueError/AttributeError/IndexError/
    TypeError/ZeroDivisionError tracebacks."""
    inputs, recon = views
    layout, change, (old, new) = ROW2[case][0], ROW2[case][1], (ROW2[case][2] or ("", ""))
    make, file_name = LAYOUTS[layout]
    document = make(recon)
    change(document)
    text = json.dumps(document)
    if old:
        text = text.replace(old, new)
    cams = _write(tmp_path / file_name, text)
    code, err = _run(capsys, inputs, "-o", tmp_path / "o.ply", "--cameras", cams, *FAST)
    _one_line(code, err, str(cams), ROW2[case][3])
    assert not (tmp_path / "o.ply").exists()


@pytest.mark.parametrize("case", ["focal 1e-300", "principal point 1e308", "principal point -1e308",
                                  "translation 1e308", "focal 1e300"])
def test_row3_absurd_but_finite_cameras_are_refused(views, tmp_path, capsys, case):
    """Row 3: a focal length of 1e-300, a principal point of ±1e308 or a translation of 1e308 (with
    ``--fix-poses``) ended with exit 0, "0 points", an empty PLY and NumPy RuntimeWarnings."""
    inputs, recon = views
    document = export.cameras_dict(recon)
    K, T = document["images"][1]["K"], document["images"][1]["cam_from_world"]
    if case.startswith("focal"):
        K[0][0] = K[1][1] = float(case.split()[1])
    elif case.startswith("principal"):
        K[0][2] = float(case.split()[2])
    else:
        T[2][3] = 1e308
    cams = _write(tmp_path / "cams.json", json.dumps(document))
    code, err = _run(capsys, inputs, "-o", tmp_path / "o.ply", "--cameras", cams, "--fix-poses", *FAST)
    _one_line(code, err, str(cams), "images[1]")
    assert not (tmp_path / "o.ply").exists()


# ------------------------------------------------------------------------------------- row 7: --overwrite
@pytest.mark.parametrize("what", ["file", "link"])
def test_row7_overwrite_keeps_a_users_file_named_sparse(views, tmp_path, capsys, what):
    """Row 7: ``--overwrite`` on a folder holding a user's regular file named ``sparse`` deleted it (replaced by
    the ``sparse/`` folder); the README promises only ``sparse/0/`` is replaced."""
    inputs, _ = views
    out = tmp_path / "out"
    out.mkdir()
    if what == "file":
        (out / "sparse").write_text("the user's notes")
    else:
        (tmp_path / "elsewhere").mkdir()
        (out / "sparse").symlink_to(tmp_path / "elsewhere")
    code, err = _run(capsys, inputs, "-o", out, "--overwrite", *FAST)
    _one_line(code, err, f"{out / 'sparse'}: is a")
    if what == "file":
        assert (out / "sparse").read_text() == "the user's notes"
    else:
        assert (out / "sparse").is_symlink() and (tmp_path / "elsewhere").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["sparse"]  # nothing else written either


def test_row7_the_merge_refuses_too(tmp_path):
    """The final merge holds the same rule (a ``sparse`` file appearing during the run)."""
    from mum.errors import UserError
    from mum.files import atomic_dir

    out = tmp_path / "out"
    out.mkdir()
    (out / "sparse").write_text("notes")
    with pytest.raises(UserError, match="is a file"):
        with atomic_dir(out, overwrite=True, entries=["scene.ply", "sparse/0"]) as tmp:
            (tmp / "scene.ply").write_text("x")
            (tmp / "sparse" / "0").mkdir(parents=True)
    assert (out / "sparse").read_text() == "notes" and not (out / "scene.ply").exists()
    assert sorted(p.name for p in out.iterdir()) == ["sparse"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------- row 20: names round-trip
@pytest.mark.parametrize("export_name", ["cameras.json", "transforms.json", "sparse/0"])
def test_row20_same_file_name_in_two_folders_round_trips(tmp_path, capsys, export_name):
    """Row 20: inputs ``a/img0.png`` and ``b/img0.png`` exported, then ``--cameras out/transforms.json`` said
    "the name is given twice" (the reader kept only the basename). Every export's names are read back, and
    re-running with any of them gives each view its own camera back."""
    for i, folder in enumerate(["a", "b", "a", "b"]):
        _image(tmp_path / folder / f"img{i // 2}.png", seed=i)
    out = tmp_path / "out"
    argv = [tmp_path / "a", tmp_path / "b", "-o", out, *FAST]
    code, err = _run(capsys, *argv)
    assert code == 0, err
    first = json.loads((out / "cameras.json").read_text())["images"]
    assert sorted(e["name"] for e in first) == ["a/img0.png", "a/img1.png", "b/img0.png", "b/img1.png"]
    code, err = _run(capsys, *argv[:2], "-o", tmp_path / "again.json", "--cameras", out / export_name,
                     "--fix-poses", *FAST)
    assert code == 0, err
    again = {e["name"]: e for e in json.loads((tmp_path / "again.json").read_text())["images"]}
    for e in first:
        assert again[e["name"]]["pose_source"] == "given" and again[e["name"]]["intrinsics_source"] == "given"
        np.testing.assert_allclose(again[e["name"]]["K"], e["K"], atol=1e-6)
        np.testing.assert_allclose(again[e["name"]]["cam_from_world"], e["cam_from_world"], atol=1e-6)
    depth = sorted(p.name for p in (out / "depth").glob("*.depth.npy"))
    assert depth == ["a_img0.depth.npy", "a_img1.depth.npy", "b_img0.depth.npy", "b_img1.depth.npy"]


def test_absurd_values_stay_out_of_the_math(views, tmp_path, capsys):
    """The ranges are generous: a focal length 0.02x or 900x the long side, a principal point just outside the
    image and a translation of 1e8 are accepted and used as given."""
    inputs, recon = views
    document = export.cameras_dict(recon)
    document["images"][0]["K"][0][0] = document["images"][0]["K"][1][1] = 0.02 * SIZE[0]
    document["images"][1]["K"][0][0] = document["images"][1]["K"][1][1] = 900.0 * SIZE[0]
    document["images"][2]["K"][0][2] = -0.9 * SIZE[0]
    document["images"][2]["cam_from_world"][0][3] = 1e8
    cams = _write(tmp_path / "cams.json", json.dumps(document))
    code, err = _run(capsys, inputs, "-o", tmp_path / "o.json", "--cameras", cams, *FAST)
    assert code == 0, err
    out = json.loads((tmp_path / "o.json").read_text())["images"]
    assert [e["intrinsics_source"] for e in out] == ["given"] * 3
    assert math.isclose(out[1]["K"][0][0], 900.0 * SIZE[0])
    shutil.rmtree(tmp_path / "in")


# ------------------------------------------------------------------------------ rows 8-10: video frame counts
def _video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    """``frames`` distinct MJPG frames (``.avi`` or ``.mkv``), each with a moving bar."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        frame[:, (i * 3) % size[0]] = 255
        writer.write(frame)
    writer.release()
    return path


def _claim_avi_frames(path: Path, frames: int) -> Path:
    """Patch an AVI's header (``avih`` and the stream's ``strh``) to claim ``frames`` frames."""
    import struct

    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.index(b"avih") + 8 + 16, frames)
    struct.pack_into("<I", data, data.index(b"strh") + 8 + 32, frames)
    path.write_bytes(bytes(data))
    return path


def _mkv_duration(path: Path, seconds: float | None) -> Path:
    """Set a Matroska file's Duration element to ``seconds`` (its TimecodeScale is 1 ms), or turn it into a Void
    element of the same length (``None``: what MediaRecorder and ffmpeg writing to a pipe produce)."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89")  # the Duration element's ID
    length = data[at + 2] & 0x7F
    if seconds is None:
        total = 3 + length
        data[at:at + total] = bytes([0xEC, 0x80 | (total - 2)]) + bytes(total - 2)
    else:
        data[at + 3:at + 3 + length] = struct.pack(">d" if length == 8 else ">f", seconds * 1000.0)
    path.write_bytes(bytes(data))
    return path


def _frames_used(out: Path) -> list[int]:
    return [int(e["name"][6:12]) for e in json.loads(out.read_text())["images"]]


@pytest.mark.parametrize("kind", ["avi 2^32", "mkv 1e13"])
def test_row8_a_claimed_frame_count_allocates_nothing(tmp_path, capsys, kind):
    """Row 8: an AVI claiming 2^32 frames or an MKV claiming 10^13 (20 real frames) ended with "out of memory"
    even with --max-frames 5: a list of the claimed frame count was built."""
    if kind.startswith("avi"):
        video = _claim_avi_frames(_video(tmp_path / "v.avi", 20), 2**32 - 1)
    else:
        video = _mkv_duration(_video(tmp_path / "v.mkv", 20), 1e12)
    code, err = _run(capsys, video, "-o", tmp_path / "o.json", "--max-frames", "5", *FAST)
    assert code == 0, err
    assert _frames_used(tmp_path / "o.json") == [0, 5, 10, 14, 19]


def test_row8_reading_a_few_frames_of_a_huge_claim_stays_small(tmp_path):
    """2^25 claimed frames used to take 3.1 GB (normal: 0.33 GB); the frames are read in a few MB."""
    import tracemalloc

    from mum.io import read_video_frames

    video = _claim_avi_frames(_video(tmp_path / "v.avi", 20), 2**25)
    tracemalloc.start()
    try:
        names, frames = read_video_frames(video, max_frames=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names == [f"frame_{i:06d}.png" for i in (0, 5, 10, 14, 19)] and len(frames) == 5
    assert peak < 20 * 2**20, peak


@pytest.mark.parametrize("max_frames", [None, 4])
def test_row9_webm_mkv_without_duration_decode(tmp_path, capsys, max_frames):
    """Row 9: a Matroska/WebM file without a Duration element (50 decodable frames) was "video has no
    readable frames": OpenCV reports a negative frame count."""
    video = _mkv_duration(_video(tmp_path / "v.mkv", 50), None)
    extra = ["--stride", "10"] if max_frames is None else ["--max-frames", str(max_frames)]
    code, err = _run(capsys, video, "-o", tmp_path / "o.json", *extra, *FAST)
    assert code == 0, err
    assert _frames_used(tmp_path / "o.json") == ([0, 10, 20, 30, 40] if max_frames is None else [0, 16, 33, 49])


def test_row10_a_duration_that_lies_drops_no_frames(tmp_path, capsys):
    """Row 10: an MKV of 100 frames whose Duration says 1 s used frames 0-9 only, silently."""
    video = _mkv_duration(_video(tmp_path / "v.mkv", 100), 1.0)
    code, err = _run(capsys, video, "-o", tmp_path / "o.json", "--max-frames", "5", *FAST)
    assert code == 0, err
    assert _frames_used(tmp_path / "o.json") == [0, 25, 50, 74, 99]


# ---------------------------------------------------------------------------- row 11: pixel limit from header
def _png_header_bomb(path: Path, side: int) -> Path:
    """A valid 1-bit PNG of ``side`` x ``side`` black pixels: a few KB on disk."""
    from tests.test_cli_safety import _png_bomb

    return _png_bomb(path, side)


@pytest.mark.parametrize("how", ["--max-pixels 2e8", "--max-pixels 200_000_000", "MUM_MAX_PIXELS=2e8"])
def test_row11_a_raised_limit_is_checked_from_the_header(tmp_path, capsys, monkeypatch, how):
    """Row 11: with --max-pixels 3e8 (or MUM_MAX_PIXELS) a 256 Mpx image was decoded first (3.2 GB) and then
    refused with the default limit in the message. Any limit, however written, is held from the header."""
    import time

    inputs = tmp_path / "in"
    _png_header_bomb(inputs / "big.png", 16_000)  # 256 Mpx
    _image(inputs / "a.png")
    if how.startswith("MUM"):
        monkeypatch.setenv("MUM_MAX_PIXELS", how.split("=")[1])
        extra = []
    else:
        extra = how.split()
    start = time.perf_counter()
    code, err = _run(capsys, inputs, "-o", tmp_path / "o.ply", *extra, *FAST)
    _one_line(code, err, "big.png: image is too large (16000x16000 = 256,000,000 pixels, the limit is 200,000,000")
    assert time.perf_counter() - start < 5  # decoding it took 20 s


def test_row11_an_image_over_the_limit_is_never_decoded(tmp_path, monkeypatch):
    """The limit is compared before anything is decoded: Pillow's PNG ``getexif()`` (for the orientation)
    decodes the whole image when it has no eXIf chunk before its pixels (the 256 Mpx 1-bit PNG: 245 MB and
    0.6 s spent before it was refused at 2e8; 3.2 GB for an RGB one)."""
    from PIL import ImageFile

    from mum.errors import UserError
    from mum.io import check_image_header

    bomb = _png_header_bomb(tmp_path / "big.png", 16_000)

    def decode(self):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(UserError, match=r"big.png: image is too large \(16000x16000"):
        check_image_header(bomb, 200_000_000)


def test_row11_an_image_within_a_raised_limit_is_measured_not_refused(tmp_path):
    """The same 256 Mpx image is within --max-pixels 3e8: its size comes from the header (Pillow's own guard,
    at the default limit, is raised for the call)."""
    from app.engine.view_source import open_views
    from mum.io import pixel_limit

    _png_header_bomb(tmp_path / "in" / "big.png", 16_000)
    source = open_views([tmp_path / "in"], tmp_path, max_pixels=pixel_limit("3e8"))
    assert source.sizes == [(16_000, 16_000)]


@pytest.mark.parametrize("value", ["abc", "1.5", "inf", "1e400", "0", "-3", "1e13"])
def test_row11_bad_pixel_limits_are_one_line(tmp_path, capsys, value):
    _image(tmp_path / "in" / "a.png")
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "o.ply", "--max-pixels", value, *FAST)
    _one_line(code, err, "--max-pixels")


# ------------------------------------------------------------------------------ rows 12, 13, 21: weights files
def _model_file(path: Path, config, kind: str = "reconstructor") -> Path:
    """A safetensors file of a few hundred bytes whose metadata records ``config`` (a dict, or raw JSON text)."""
    import torch
    from safetensors.torch import save_file

    text = config if isinstance(config, str) else json.dumps(config)
    save_file({"w": torch.zeros(4)}, str(path), metadata={"mum.kind": kind, "mum.config": text})
    return path


def _preset(name: str) -> dict:
    from heads.registry import PRESETS

    return json.loads(json.dumps(PRESETS[name].to_dict()))


ROW13 = {
    "nested 100,000 deep": lambda d: "[" * 100_000 + "]" * 100_000,
    "nested inside a field": lambda d: json.dumps(d).replace('"dinov2": null', '"dinov2": ' + "[" * 50 + "]" * 50),
    "patch_size 0": lambda d: {**d, "patch_size": 0},
    "num_heads 0": lambda d: {**d, "aggregator": {**d["aggregator"], "num_heads": 0}},
    "embed_dim big": lambda d: {**d, "encoder": {**d["encoder"], "embed_dim": "big"}},
    "depth NaN": lambda d: json.dumps({**d, "aggregator": {**d["aggregator"], "depth": float("nan")}}),
    "not an object": lambda d: "[1, 2]",
    "unknown field": lambda d: {**d, "camera_head": {**d["camera_head"], "trunk_width": 3}},
    "odd head size": lambda d: {**d, "aggregator": {**d["aggregator"], "num_heads": 3}},
}


@pytest.fixture()
def capped_memory():
    """The model rows run under :func:`memory_cap` (a model built despite its claimed size
    fails the test instead of exhausting the machine)."""
    with memory_cap():
        yield


@pytest.mark.parametrize("case", list(ROW13))
def test_row13_malformed_model_configs_are_one_line(tmp_path, capsys, capped_memory, case):
    """Row 13: a ``mum.config`` nested 100,000 deep, ``patch_size`` 0, ``num_heads`` 0 or ``embed_dim`` "big"
    gave tracebacks."""
    _image(tmp_path / "in" / "a.png")
    model = _model_file(tmp_path / "m.safetensors", ROW13[case](_preset("mum-tiny")))
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "o.ply", "--model", model, "--fast", "--quiet")
    _one_line(code, err, str(model), "config")
    assert not (tmp_path / "o.ply").exists()


@pytest.mark.parametrize("case", ["encoder depth 100,000", "aggregator depth 100,000", "vitl16 in a tiny file"])
def test_row12_a_claimed_model_is_refused_before_it_is_built(tmp_path, capsys, capped_memory, case):
    """Row 12: a safetensors file of a few hundred bytes whose ``mum.config`` claimed encoder depth 100,000 had
    its model built before the keys were checked (11 GB in 26 s, then "out of memory"). Its config is checked
    and the model built on the meta device and compared with the file's header first."""
    import time

    config = _preset("mum-tiny" if "100,000" in case else "mum-vitl16")
    if case.startswith("encoder"):
        config["encoder"]["depth"] = 100_000
    elif case.startswith("aggregator"):
        config["aggregator"]["depth"] = 100_000
    _image(tmp_path / "in" / "a.png")
    model = _model_file(tmp_path / "m.safetensors", config)
    start = time.perf_counter()
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "o.ply", "--model", model, "--fast", "--quiet")
    _one_line(code, err, str(model))
    assert ("out of range" in err[0]) if "100,000" in case else ("missing keys" in err[0])
    assert time.perf_counter() - start < 10


_PEAK = """
import atexit, runpy, sys
out = sys.argv[1]
def record():
    open(out, "w").write([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0])
atexit.register(record)
sys.argv = ["mum-reconstruct"] + sys.argv[2:]
runpy.run_module("app.cli", run_name="__main__")
"""


CHILD_ADDRESS_SPACE = 6 << 30  # bytes a measured command may map


def _peak_rss_kib(tmp_path: Path, *argv) -> tuple[int, str]:
    """The command's own peak RSS (VmHWM, KiB) and its stderr, in a fresh process."""
    import resource
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    record = tmp_path / f"peak_{len(list(tmp_path.glob('peak_*')))}"

    def cap() -> None:  # a fresh interpreter with torch maps ~2 GB; a model built despite its checks fails
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))

    proc = subprocess.run([sys.executable, "-c", _PEAK, str(record), *map(str, argv)], cwd=repo, capture_output=True,
                          text=True, timeout=300, preexec_fn=cap)
    return int(record.read_text()), proc.stderr


def test_row12_memory_of_a_refused_model_is_that_of_any_error(tmp_path):
    """Peak RSS of refusing a 300M-parameter config in a tiny file (it used to build the model first: 1.3 GB)
    is within 1.5x that of refusing a missing weights file."""
    _image(tmp_path / "in" / "a.png")
    model = _model_file(tmp_path / "m.safetensors", _preset("mum-vitl16"))
    common = [tmp_path / "in", "-o", tmp_path / "o.ply", "--fast", "--quiet"]
    baseline, err0 = _peak_rss_kib(tmp_path, *common, "--model", tmp_path / "missing.safetensors")
    refused, err1 = _peak_rss_kib(tmp_path, *common, "--model", model)
    assert err0.startswith("error: ") and err1.startswith("error: ") and "missing keys" in err1, (err0, err1)
    assert refused < 1.5 * baseline, (refused, baseline)


def test_row21_a_raw_pickle_is_refused_without_torchs_warning(tmp_path, capsys, capped_memory):
    """Row 21: a raw pickle ``.pt`` as ``--weights`` was refused, but torch's two-line pickle warning came
    first. It is refused from its first bytes, before torch unpickles anything."""
    import pickle

    _image(tmp_path / "in" / "a.png")
    raw = tmp_path / "w.pt"
    raw.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    code, err = _run(capsys, tmp_path / "in", "-o", tmp_path / "o.ply", "--model", "mum-tiny", "--weights", raw,
                     "--fast", "--quiet")
    _one_line(code, err, str(raw), "raw Python pickle")


# -------------------------------------------------------------------------------------- row 19: strict JSON
def _strict_loads(text: str):
    def refuse(token: str):
        raise AssertionError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("mode", ["--fast", "default"])
def test_row19_json_summary_of_one_view_is_strict_json(tmp_path, capsys, mode):
    """Row 19: the ``--json`` summary of a 1-view run held a bare ``NaN`` (median_depth_disagreement), which
    strict parsers reject. What is unknown is ``null``; every export is strict JSON too."""
    _image(tmp_path / "in" / "a.png", size=(96, 64))
    extra = ["--fast"] if mode == "--fast" else []
    code = main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json", "--model", "mum-tiny", "--size", "64",
                 *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = _strict_loads(captured.out)
    assert summary["views"] == 1 and summary["consistency"]["median_depth_disagreement"] is None
    for name in ("cameras.json", "transforms.json", "depth/depth_scale.json"):
        _strict_loads((tmp_path / "out" / name).read_text())


def test_strict_json_turns_what_is_unknown_into_null():
    from mum.schema import strict_json

    text = strict_json({"a": float("nan"), "b": [np.float32(np.inf), np.float64(1.5), (1, -np.inf)],
                        "c": np.arange(2), "d": np.int64(3)})
    assert _strict_loads(text) == {"a": None, "b": [None, 1.5, [1, None]], "c": [0, 1], "d": 3}


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_while_decoding_a_video_is_one_line(tmp_path):
    """``$TMPDIR`` full while a video's frames are decoded (the first frame's file is a link to ``/dev/full``):
    one ``error:`` line; libpng used to print its own 'libpng error: Write Error' line before it."""
    import subprocess
    import sys

    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "frame_000000.png").symlink_to("/dev/full")
    code = ("import sys\nfrom app.engine.view_source import open_views\nfrom app.engine.runtime import print_error\n"
            "from mum.errors import UserError\ntry:\n    open_views([sys.argv[1]], sys.argv[2])\n"
            "except UserError as exc:\n    print_error(str(exc))\n    sys.exit(2)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(video), str(scratch)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cannot write the decoded video frames" in lines[0], \
        proc.stderr
