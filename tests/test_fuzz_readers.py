"""Property-based fuzzing (hypothesis) of the camera files users hand over (``--cameras``, the web app's cameras
upload) in all their formats: the project's ``cameras.json``, the ``demo/*/cameras_reference.json`` layout,
nerfstudio ``transforms.json``, and COLMAP models (text and binary); and of the model config recorded in a
safetensors file (``mum.config``).

Each example starts from a valid file and breaks it: wrong types, ``null``, strings, huge integers, ``1e400``,
``NaN``/``Infinity``, 1e-300, deep nesting (up to 100,000 levels), deleted keys, truncated or mutated bytes,
counts claiming 2^40 records. Properties: the reader returns cameras that pass the range checks, or raises one
one-line :class:`~mum.errors.UserError` naming the file; never another exception, never a warning, never a
hang, a crash or a memory blow-up (COLMAP models are read in a forked child under a memory limit and a time
limit: pycolmap is C++). A config either builds (on the meta device: nothing allocated) within the parameter
bound or is refused with one line.

Bounded for the default suite (a few dozen examples each, ~20 s in all); ``MUM_FUZZ_SCALE=50`` multiplies the
examples; ``python scripts/fuzz_readers.py --minutes 30`` runs them for a time budget with fixed seeds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import resource
import signal
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mum.data.readers.schema import check_camera
from mum.errors import UserError
from tests.test_fuzz_inputs import no_warnings_escape

SCALE = float(os.environ.get("MUM_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(40 * SCALE), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHILD_TIMEOUT_S = 60  # a forked reader that takes longer hangs
CHILD_MEMORY = 1 << 30  # bytes a forked reader may allocate beyond what the test process holds
EXAMPLES = {"cameras": 0, "colmap": 0, "config": 0}  # examples run (scripts/fuzz_readers.py reports them)
MODEL_MEMORY = 3 << 29  # 1.5 GiB a model load or build under test may map beyond what the test process maps
RAW = "\x00raw:"  # a string value replaced by a raw JSON token (1e400, NaN, deep nesting) when written


# ------------------------------------------------------------------------------------------ valid files
def _rotation(q: tuple[float, float, float, float]) -> np.ndarray:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@st.composite
def cameras(draw, count: int) -> list[dict]:
    """``count`` valid cameras: size, K (pixel centres at integers), cam_from_world 4×4."""
    out = []
    for i in range(count):
        w, h = draw(st.integers(2, 4000)), draw(st.integers(2, 4000))
        f = draw(st.floats(0.3, 3.0)) * max(w, h)
        cx, cy = draw(st.floats(0, w)), draw(st.floats(0, h))
        q = draw(st.tuples(st.floats(0.2, 1), *[st.floats(-1, 1)] * 3))  # w >= 0.2: a unit quaternion follows
        T = np.eye(4)
        T[:3, :3] = _rotation(q)
        T[:3, 3] = draw(st.tuples(*[st.floats(-100, 100)] * 3))
        out.append({"name": f"view_{i}.png", "width": w, "height": h,
                    "K": [[f, 0.0, cx], [0.0, f * draw(st.floats(0.9, 1.1)), cy], [0.0, 0.0, 1.0]],
                    "cam_from_world": T.tolist()})
    return out


def project_layout(cams: list[dict]) -> dict:
    return {"images": [dict(c) for c in cams]}


def demo_layout(cams: list[dict]) -> dict:
    def intrinsic(K):
        K = np.array(K)
        K[:2, 2] += 0.5
        return K.tolist()

    return {"cameras": {c["name"]: {"width": c["width"], "height": c["height"], "intrinsic": intrinsic(c["K"]),
                                    "extrinsic": c["cam_from_world"]} for c in cams}}


def transforms_layout(cams: list[dict], angle: bool) -> dict:
    frames = []
    for c in cams:
        K, T = np.array(c["K"]), np.array(c["cam_from_world"])
        c2w = np.linalg.inv(T) @ np.diag([1.0, -1.0, -1.0, 1.0])
        frame = {"file_path": f"images/{c['name']}", "transform_matrix": c2w.tolist(), "w": c["width"],
                 "h": c["height"], "cx": K[0, 2] + 0.5, "cy": K[1, 2] + 0.5}
        if angle:
            frame["camera_angle_x"] = 2 * math.atan(0.5 * c["width"] / K[0, 0])
        else:
            frame["fl_x"], frame["fl_y"] = K[0, 0], K[1, 1]
        frames.append(frame)
    return {"camera_model": "OPENCV", "k1": 0.0, "frames": frames}


# ------------------------------------------------------------------------------------------- breaking
BAD_NUMBERS = [0, -1, 1e-300, -1e-300, 1e308, -1e308, 10**400, -(10**30), 2**63, 0.5, f"{RAW}1e400",
               f"{RAW}-1e400", f"{RAW}NaN", f"{RAW}Infinity", f"{RAW}-Infinity", f"{RAW}1e-400"]


@st.composite
def deep_nesting(draw) -> str:
    depth = draw(st.sampled_from([33, 64, 1000, 5000, 100_000]))
    opener = draw(st.sampled_from(["[", '{"a":']))
    closer = "]" if opener == "[" else "}"
    return RAW + opener * depth + "1" + closer * depth


def bad_values() -> st.SearchStrategy:
    leaf = st.one_of(st.none(), st.booleans(), st.text(max_size=6), st.sampled_from(BAD_NUMBERS),
                     st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False))
    return st.one_of(leaf, st.lists(leaf, max_size=4), st.lists(st.lists(leaf, max_size=4), max_size=4),
                     st.dictionaries(st.text(max_size=4), leaf, max_size=3), deep_nesting(),
                     st.just([]), st.just({}), st.just([[1, 2], [3, 4]]), st.just([1.0, 2.0, 3.0]))


@st.composite
def broken(draw, document):
    """``document`` with 0–3 changes: a value anywhere replaced by a bad one, or a key/element deleted."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.integers(0, 15)) == 0:
            document = draw(bad_values())  # the whole document of another type
        node, key = None, None
        here = document
        while isinstance(here, (dict, list)) and here and (node is None or draw(st.integers(0, 3))):
            keys = list(here) if isinstance(here, dict) else list(range(len(here)))
            node, key = here, draw(st.sampled_from(keys))
            here = node[key]
        if node is None:
            continue
        if draw(st.integers(0, 4)) == 0:
            del node[key]
        else:
            node[key] = draw(bad_values())
    return document


def _unquote_raw(text: str) -> str:
    """JSON text with each string that starts with :data:`RAW` replaced by the raw token it carries."""
    marker = '"' + json.dumps(RAW)[1:-1]
    out, start = [], 0
    while True:
        i = text.find(marker, start)
        if i < 0:
            return "".join(out) + text[start:]
        value, end = json.decoder.scanstring(text, i + 1)
        out.append(text[start:i] + value[len(RAW):])
        start = end


def serialise(document) -> bytes:
    return _unquote_raw(json.dumps(document)).encode()


@st.composite
def json_files(draw) -> tuple[str, bytes, list[dict]]:
    """(layout, bytes, the valid cameras it was made from): a valid file of one layout, broken; or its text
    truncated, mutated or made deep."""
    cams = draw(cameras(draw(st.integers(1, 3))))
    layout = draw(st.sampled_from(["project", "demo", "transforms", "transforms-angle"]))
    document = {"project": lambda: project_layout(cams), "demo": lambda: demo_layout(cams),
                "transforms": lambda: transforms_layout(cams, False),
                "transforms-angle": lambda: transforms_layout(cams, True)}[layout]()
    how = ["as is", "as is", "as is", "truncated", "mutated", "latin-1", "deep"][draw(st.integers(0, 6))]
    document = draw(broken(document))
    if how == "deep":  # deep nesting for the whole document, or for one value of its first entry
        deep = draw(deep_nesting())
        entries = []
        if isinstance(document, dict):
            entries = document.get("images") or document.get("frames") or document.get("cameras") or []
            entries = (list(entries.values()) if isinstance(entries, dict)  # broken() may have made it anything
                       else entries if isinstance(entries, list) else [])
        if draw(st.booleans()) and entries and isinstance(entries[0], dict) and entries[0]:
            entries[0][draw(st.sampled_from(sorted(entries[0])))] = deep
        else:
            document = deep
    data = serialise(document)
    if how == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "mutated":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    elif how == "latin-1":
        data = data.replace(b"view_", "vïew_".encode("latin-1"))
    return layout, data, cams


def check_user_error(exc: UserError, named: Path) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 600, text
    assert str(named) in text, text  # the readers start with it; --fix-poses names the option first


def read_checked(path: Path, named: Path | None = None):
    """``read_cameras_file(path)``: valid cameras, or one :class:`UserError` line naming the file."""
    from app.engine.known_cameras import read_cameras_file

    try:
        entries = read_cameras_file(path)
    except UserError as exc:
        check_user_error(exc, named or path)
        return None
    for e in entries:
        check_camera(e.where, e.width, e.height, e.K, e.cam_from_world)
    return entries


def check_json_file(example: tuple[str, bytes, list[dict]]) -> None:
    EXAMPLES["cameras"] += 1
    layout, data, cams = example
    from app.engine.known_cameras import known_cameras

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("transforms.json" if layout.startswith("transforms") else "cameras.json")
        path.write_bytes(data)
        with no_warnings_escape():
            entries = read_checked(path)
            if entries is None:
                return
            names = [c["name"] for c in cams]
            sizes = [(c["width"], c["height"]) for c in cams]
            try:  # matching to the views the file was made for: a name or size it changed is one line
                known_cameras(names, sizes, cameras_file=path, fix_poses=True)
            except UserError as exc:
                check_user_error(exc, path)


@FUZZ
@given(json_files())
def test_json_cameras_files_give_cameras_or_one_line(example) -> None:
    check_json_file(example)


# ----------------------------------------------------------------------------------------------- COLMAP
def _colmap_model(cams: list[dict], folder: Path) -> None:
    """A COLMAP model of ``cams`` with a few 3D points, written as binary and text into ``folder``."""
    from mum.pycolmap_import import import_pycolmap

    pycolmap = import_pycolmap()
    rec = pycolmap.Reconstruction()
    for i, c in enumerate(cams):
        K = np.array(c["K"])
        cam = pycolmap.Camera(model="PINHOLE", width=c["width"], height=c["height"],
                              params=[K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5], camera_id=i + 1)
        rec.add_camera_with_trivial_rig(cam)
        T = np.array(c["cam_from_world"])
        image = pycolmap.Image(name=c["name"], camera_id=i + 1, image_id=i + 1,
                               points2D=[pycolmap.Point2D(np.array([1.5, 2.5]))])
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(T[:3, :3]), T[:3, 3]))
    for i in range(len(cams)):
        track = pycolmap.Track()
        track.add_element(i + 1, 0)
        rec.add_point3D(np.array([0.1 * i, 0.2, 3.0]), track, np.array([10, 20, 30], np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    rec.write_binary(str(folder))
    rec.write_text(str(folder))


TOKENS = ["nan", "inf", "-inf", "1e400", "-1", "0", "abc", "", "99999999999999999999", "4294967296",
          "18446744073709551615", "1e-300", "PINHOLE", "UNKNOWN_MODEL", "CAMERA", "0.5"]


@st.composite
def colmap_mutation(draw, files: dict[str, bytes]) -> dict[str, bytes]:
    """The model's files with 1–3 changes to one format: binary bytes truncated, overwritten (a count
    claiming 2^40 records, a random u64), NUL bytes removed, or text tokens replaced, lines dropped or
    duplicated; or a whole file missing/empty."""
    files = dict(files)
    binary = draw(st.booleans())
    names = sorted(n for n in files if n.endswith(".bin" if binary else ".txt"))
    for other in [n for n in files if n not in names]:
        del files[other]  # one format only: pycolmap reads binary when the three .bin files are there
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        data = files[name]
        how = draw(st.sampled_from(["truncate", "u64", "bytes", "nul", "empty", "drop"] if binary
                                   else ["token", "token", "token", "line", "duplicate", "truncate", "empty"]))
        if how == "drop":
            del files[name]
            names.remove(name)
            if not names:
                break
            continue
        if how == "empty":
            data = b""
        elif how == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif how == "u64" and len(data) >= 8:
            at = draw(st.integers(0, len(data) - 8))
            value = draw(st.sampled_from([2**40, 2**64 - 1, 2**32, 0, 1, 1000]) | st.integers(0, 2**64 - 1))
            data = data[:at] + struct.pack("<Q", value) + data[at + 8:]
        elif how == "bytes" and data:
            data = bytearray(data)
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            data = bytes(data)
        elif how == "nul":
            data = data.replace(b"\0", b"a")
        elif not binary:
            lines = data.decode().split("\n")
            body = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
            if body:
                i = draw(st.sampled_from(body))
                tokens = lines[i].split(" ")
                if how == "token":
                    tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(TOKENS))
                    lines[i] = " ".join(tokens)
                elif how == "line":
                    del lines[i]
                else:
                    lines.insert(i, lines[i])
            data = "\n".join(lines).encode()
        files[name] = data
    return files


@st.composite
def colmap_models(draw) -> dict[str, bytes]:
    cams = draw(cameras(draw(st.integers(1, 3))))
    with tempfile.TemporaryDirectory() as d:
        _colmap_model(cams, Path(d))
        files = {p.name: p.read_bytes() for p in Path(d).iterdir()}
    return draw(colmap_mutation(files))


def _mapped_bytes() -> int:
    """This process's virtual memory (VmSize), bytes."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))


@contextlib.contextmanager
def memory_cap(extra: int = MODEL_MEMORY):
    """Within the block, this process may map at most ``extra`` more bytes (a soft ``RLIMIT_AS``, restored
    after): a model whose config slips through its checks fails the test with "out of memory" instead of
    exhausting the machine (an unchecked encoder depth of 100,000 allocates 11 GB)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def in_child(fn, *args):
    """``fn(*args)`` in a forked child under a memory limit (what this process holds + :data:`CHILD_MEMORY`)
    and :data:`CHILD_TIMEOUT_S`; returns what it returned, or re-raises what it raised (pickled), or fails
    the test when the child crashed (a C++ abort), was killed or hung."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            vm = _mapped_bytes()
            resource.setrlimit(resource.RLIMIT_AS, (vm + CHILD_MEMORY, vm + CHILD_MEMORY))
            signal.alarm(CHILD_TIMEOUT_S)
            try:
                result = ("ok", fn(*args))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                result = ("raised", exc)
            try:
                payload = pickle.dumps(result)
            except Exception as exc:  # noqa: BLE001
                payload = pickle.dumps(("raised", RuntimeError(f"unpicklable: {exc!r} from {result!r}")))
            with os.fdopen(write, "wb") as fh:
                fh.write(payload)
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        payload = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and payload, (
        f"the reader crashed, hung or was killed (status {status:#x}: signal "
        f"{os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})")
    kind, value = pickle.loads(payload)
    if kind == "raised":
        raise value
    return value


def _read_model(folder: str) -> int:
    """How many cameras ``folder`` gives; a :class:`UserError` goes to the parent."""
    from app.engine.known_cameras import read_cameras_file

    entries = read_cameras_file(folder)
    for e in entries:
        check_camera(e.where, e.width, e.height, e.K, e.cam_from_world)
    return len(entries)


def check_colmap_model(files: dict[str, bytes]) -> None:
    EXAMPLES["colmap"] += 1
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "sparse" / "0"
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        with no_warnings_escape():
            try:
                in_child(_read_model, str(folder))
            except UserError as exc:  # from the parent's view: the folder named as --cameras or its model
                check_user_error(exc, Path(d))


@FUZZ
@given(colmap_models())
def test_colmap_models_give_cameras_or_one_line(files) -> None:
    check_colmap_model(files)


@pytest.mark.parametrize("name, claim", [("points3D.bin", 2**40), ("images.bin", 2**40), ("cameras.bin", 2**40),
                                         ("frames.bin", 2**40), ("rigs.bin", 2**40)])
def test_a_binary_count_beyond_the_file_is_refused_before_pycolmap(tmp_path, name, claim) -> None:
    """Issue 26 row 4: 8 bytes claiming 2^40 records hung (or exhausted memory in) pycolmap's reader."""
    folder = tmp_path / "sparse" / "0"
    _colmap_model([{"name": "a.png", "width": 40, "height": 30, "K": [[40, 0, 20], [0, 40, 15], [0, 0, 1]],
                    "cam_from_world": np.eye(4).tolist()}], folder)
    (folder / name).write_bytes(struct.pack("<Q", claim))
    with pytest.raises(UserError, match=rf"{name}: not a valid COLMAP binary file \(declares 1,099,511,627,776 "):
        in_child(_read_model, str(folder))


def test_an_image_name_without_its_nul_is_refused(tmp_path) -> None:
    """Issue 26 row 4: an ``images.bin`` whose last name lacks its NUL byte looped in pycolmap's reader."""
    folder = tmp_path / "sparse" / "0"
    _colmap_model([{"name": "a.png", "width": 40, "height": 30, "K": [[40, 0, 20], [0, 40, 15], [0, 0, 1]],
                    "cam_from_world": np.eye(4).tolist()}], folder)
    data = (folder / "images.bin").read_bytes()
    (folder / "images.bin").write_bytes(data[: data.index(b"a.png") + 5] + b"x" * 200)  # no NUL up to the end
    with pytest.raises(UserError, match="lacks its terminating NUL"):
        in_child(_read_model, str(folder))


@pytest.mark.parametrize("kind", ["bin", "txt"])
def test_an_image_name_that_is_not_utf8_is_refused(tmp_path, kind) -> None:
    """Found by the 30-minute fuzz run (``scripts/fuzz_readers.py``, seed 3): a name whose byte was mutated to
    0x80 reached Python from pycolmap as a ``UnicodeDecodeError`` traceback, in a binary or a text model."""
    folder = tmp_path / "sparse" / "0"
    _colmap_model([{"name": "a.png", "width": 40, "height": 30, "K": [[40, 0, 20], [0, 40, 15], [0, 0, 1]],
                    "cam_from_world": np.eye(4).tolist()}], folder)
    for other in folder.glob("*.txt" if kind == "bin" else "*.bin"):
        other.unlink()
    images = folder / f"images.{kind}"
    images.write_bytes(images.read_bytes().replace(b"a.png", b"\x80.png"))
    with pytest.raises(UserError, match="name is not UTF-8 text"):
        in_child(_read_model, str(folder))


# --------------------------------------------------------------------------------------------- model configs
def _preset_dicts() -> dict[str, dict]:
    from heads.registry import PRESETS

    return {name: json.loads(json.dumps(config.to_dict())) for name, config in PRESETS.items()}


NUMERIC_KEYS = ["depth", "embed_dim", "num_heads", "patch_size", "image_size", "mlp_ratio", "features",
                "trunk_depth", "aa_block_size", "num_register_tokens", "num_iterations", "rope_freq", "norm_eps"]


@st.composite
def plausible_config(draw) -> dict:
    """The tiny preset with its sizes redrawn among small values a model might have (most pass the checks, so
    the accepted configs are built and run)."""
    document = _preset_dicts()["mum-tiny"]
    agg, cam, dpt, enc = document["aggregator"], document["camera_head"], document["dpt"], document["encoder"]
    patch = draw(st.sampled_from([8, 14, 16]))
    document["patch_size"] = enc["patch_size"] = patch
    document["image_size"] = draw(st.integers(patch, 256))
    for part, dims in ((agg, [16, 32, 48, 64, 96, 128]), (enc, [16, 32, 48, 64, 96, 192])):
        part["num_heads"] = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
        part["embed_dim"] = draw(st.sampled_from(dims))
        part["depth"] = draw(st.integers(1, 6))
        part["mlp_ratio"] = draw(st.sampled_from([0.5, 1.0, 2.0, 4.0]))
    agg["aa_block_size"] = draw(st.sampled_from([1, 2, 3]))
    agg["num_register_tokens"] = draw(st.integers(0, 6))
    agg["init_values"] = draw(st.sampled_from([None, 0.01, 1.0]))
    cam["trunk_depth"], cam["num_iterations"] = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    cam["num_heads"] = draw(st.sampled_from([1, 2, 4, 8, 3]))
    dpt["features"] = draw(st.sampled_from([4, 8, 16, 32, 6]))
    dpt["out_channels"] = [draw(st.sampled_from([4, 8, 16, 32, 64, 12])) for _ in range(4)]
    dpt["intermediate_layer_idx"] = [draw(st.integers(-agg["depth"], agg["depth"])) for _ in range(4)]
    return document


@st.composite
def model_configs(draw) -> dict:
    """A preset's recorded config broken like the camera files, or with its numbers changed (small and huge
    depths, widths and head counts: the shapes a hand-edited or hostile file can claim), or a plausible small
    one (:func:`plausible_config`)."""
    if draw(st.integers(0, 2)) == 0:
        return draw(plausible_config())
    document = _preset_dicts()[draw(st.sampled_from(["mum-tiny", "mum-small", "mum-vitl16", "vggt-1b"]))]
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(["aggregator", "camera_head", "dpt", "encoder", None]))
        node = document if section is None else document.get(section)
        if not isinstance(node, dict):
            continue
        key = draw(st.sampled_from(sorted(node) + NUMERIC_KEYS))
        node[key] = draw(st.one_of(st.integers(-2, 300), st.sampled_from([100_000, 2**31, 4096, 8192, 1.5, 0]),
                                   bad_values()))
    if draw(st.integers(0, 3)) == 0:
        document = draw(broken(document))
    return document


def check_model_config(document) -> None:
    """A config either is refused with one line, or builds on the meta device within the parameter bound and
    (when small) builds for real and runs a forward pass; a safetensors file recording it and holding one small
    tensor is refused with one line naming the file, before anything is built."""
    EXAMPLES["config"] += 1
    import torch
    from safetensors.torch import save_file

    from heads.config import ReconstructorConfig
    from heads.model import build_reconstructor
    from heads.registry import load_model
    from mum.checkpoint import MAX_PARAMETERS

    with no_warnings_escape(), memory_cap():
        try:
            config = ReconstructorConfig.from_dict(json.loads(serialise(document)))
        except UserError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
            config = None
            event("config refused")
        except (ValueError, RecursionError):
            config = None  # the JSON text itself is invalid (a raw 1e400 in a dict key position ...)
            event("not JSON")
        if config is not None:
            model = build_reconstructor(config, device="meta")
            count = sum(p.numel() for p in model.parameters())
            event("config built on meta")
            if count <= 8_000_000:
                event("config built and run")
                model = build_reconstructor(config).eval()
                side = config.patch_size * 2
                with torch.no_grad():
                    model(torch.rand(1, 1, 3, side, side))
            del model
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.safetensors"
            text = serialise(document).decode("utf-8", "replace")
            save_file({"w": torch.zeros(2)}, str(path), metadata={"mum.kind": "reconstructor", "mum.config": text})
            with pytest.raises(UserError) as info:
                load_model(path, device="cpu")
            assert str(info.value).startswith(str(path)) and "\n" not in str(info.value), str(info.value)
    assert MAX_PARAMETERS >= 1.2e9


@FUZZ
@given(model_configs())
def test_model_configs_build_or_give_one_line(document) -> None:
    check_model_config(document)
