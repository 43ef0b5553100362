"""The web app over HTTP with ``gradio_client``: the ``/reconstruct`` API (default path and fast preview), bad
uploads, concurrent requests; the handlers: SfM camera sources, the fast preview without SfM, progress through the
pipeline's stages, the confidence default of each mode, the network size of portrait photos, and re-rendering
from the cached result without running the model again."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
trimesh = pytest.importorskip("trimesh")
from gradio_client import Client, handle_file
from web_support import DEMO_IMAGES, SFM_VIEWS, CountingModel, start_server, tiny_model

MAX_FILES = 6
MAX_FILE_MB = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = CountingModel(tiny_model())
    app, url, _models = start_server(model, tmp_path_factory.mktemp("web"), max_files=MAX_FILES, max_file_mb=MAX_FILE_MB)
    yield url, model
    app.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[0], verbose=False)


def images(n: int) -> list:
    return [handle_file(str(p)) for p in DEMO_IMAGES[:n]]


def check_result(result, n_views: int, views: list[Path] | None = None) -> list[str]:
    """cameras.json in the CLI's schema with one entry per view; GLB with one frustum per view; PLY parses.
    Returns each camera's source."""
    from plyfile import PlyData

    views = DEMO_IMAGES[:n_views] if views is None else views
    glb, ply, cams = result
    data = json.loads(Path(cams).read_text())
    assert data["images"] and len(data["images"]) == n_views
    assert set(data) == {"convention", "images"}
    for entry in data["images"]:
        assert set(entry) == {"name", "width", "height", "K", "cam_from_world", "source", "pose_source", "intrinsics_source"}
        assert (entry["width"], entry["height"]) == (640, 480)
        assert np.asarray(entry["K"]).shape == (3, 3) and np.asarray(entry["cam_from_world"]).shape == (4, 4)
        assert entry["source"] in ("sfm", "network")
    assert [e["name"] for e in data["images"]] == [p.name for p in views]
    scene = trimesh.load(glb)
    assert sum(name.startswith("camera_") for name in scene.geometry) == n_views
    assert "points" in scene.geometry
    vertex = PlyData.read(ply)["vertex"]
    assert vertex.count == len(scene.geometry["points"].vertices) > 0
    return [e["source"] for e in data["images"]]


def test_api_reconstruct_returns_cli_exports(server, client):
    _url, model = server
    before = model.calls
    check_result(client.predict(images(3), api_name="/reconstruct"), 3)  # an old caller: files only
    assert model.calls == before + 1
    # one view: SfM cannot run, the warning does not break the call and the camera is the network's
    assert check_result(client.predict(images(1), api_name="/reconstruct"), 1) == ["network"]


def server_network_size(model) -> tuple[int, int]:
    """The test server's network size for the 640 × 480 demo views (see ``web_support.start_server``)."""
    import os

    from mum.io import network_size

    long_side = model.cfg.image_size if os.environ.get("MUM_WEB_TEST_MODEL") else 112
    return network_size(640, 480, long_side, model.patch_size)


def test_api_default_path_and_fast_option(server, client):
    """Without ``fast`` the API runs the default path (SfM cameras, no confidence filter); ``fast=True`` (as a
    second argument or by name) the network alone, dropping the lower half by confidence."""
    from plyfile import PlyData

    _url, model = server
    files = [handle_file(str(p)) for p in SFM_VIEWS]
    before = model.calls
    sources = check_result(client.predict(files, api_name="/reconstruct"), len(SFM_VIEWS), SFM_VIEWS)
    assert sources.count("sfm") >= len(SFM_VIEWS) - 1
    for fast in (client.predict(files, True, api_name="/reconstruct"),
                 client.predict(files, fast=True, api_name="/reconstruct")):
        assert check_result(fast, len(SFM_VIEWS), SFM_VIEWS) == ["network"] * len(SFM_VIEWS)
        n = PlyData.read(fast[1])["vertex"].count
        w, h = server_network_size(model)
        assert 0.4 * len(SFM_VIEWS) * w * h < n <= 0.5 * len(SFM_VIEWS) * w * h + 1  # the 50th percentile
    assert model.calls == before + 3


def test_api_is_documented(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert "/reconstruct" in info["named_endpoints"]
    assert list(info["named_endpoints"]) == ["/reconstruct"]  # UI-only events stay out of the API page
    params = info["named_endpoints"]["/reconstruct"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["files", "fast", "cameras", "fix_poses"]
    assert not params[0]["parameter_has_default"]
    assert params[1]["parameter_has_default"] and params[1]["parameter_default"] is False
    assert params[3]["parameter_has_default"] and params[3]["parameter_default"] is False


def _bad_files(tmp: Path) -> dict[str, list]:
    text = tmp / "notes.txt"
    text.write_text("not an image")
    corrupt = tmp / "corrupt.jpg"
    corrupt.write_bytes(DEMO_IMAGES[0].read_bytes()[:2000][::-1])
    truncated = tmp / "truncated.png"
    truncated.write_bytes(DEMO_IMAGES[0].read_bytes()[:5000])
    video = tmp / "empty.mp4"
    video.write_bytes(b"\x00" * 1000)
    big = tmp / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(int(MAX_FILE_MB * 2**20) + 10))
    return {
        "non-image file": [handle_file(str(text))],
        "corrupt image": [handle_file(str(corrupt)), *images(1)],
        "truncated image": [handle_file(str(truncated)), *images(1)],
        "too many files": [handle_file(str(DEMO_IMAGES[i % len(DEMO_IMAGES)])) for i in range(MAX_FILES + 1)],
        "oversized file": [handle_file(str(big))],
        "empty submission": [],
        "video without frames": [handle_file(str(video))],
    }


def test_bad_uploads_get_errors_and_server_keeps_serving(client, tmp_path):
    messages = {}
    for case, files in _bad_files(tmp_path).items():
        with pytest.raises(Exception) as err:
            client.predict(files, api_name="/reconstruct")
        messages[case] = str(err.value)
    assert "not an image" in messages["non-image file"]
    assert "corrupt" in messages["corrupt image"] or "readable" in messages["corrupt image"]
    assert "truncated" in messages["truncated image"] or "corrupt" in messages["truncated image"]
    assert "too many files" in messages["too many files"]
    assert "no files uploaded" in messages["empty submission"]
    assert "video" in messages["video without frames"]
    assert "/tmp/gradio" not in messages["corrupt image"]  # server folders stay private
    assert "large" in messages["oversized file"].lower() or "size" in messages["oversized file"].lower()
    check_result(client.predict(images(2), api_name="/reconstruct"), 2)


def test_api_accepts_one_video(client, tmp_path):
    """One video in: frames are sampled (at most the server's view limit) and named by frame index."""
    import cv2

    video = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (320, 240))
    for p in DEMO_IMAGES[:5]:
        writer.write(cv2.resize(cv2.imread(str(p)), (320, 240)))
    writer.release()
    glb, _ply, cams = client.predict([handle_file(str(video))], api_name="/reconstruct")
    names = [e["name"] for e in json.loads(Path(cams).read_text())["images"]]
    assert names == [f"frame_{i:06d}.png" for i in range(5)]
    assert sum(k.startswith("camera_") for k in trimesh.load(glb).geometry) == 5


def test_server_refuses_oversized_upload(server):
    """The limit holds for any HTTP client, not only for gradio_client's own check."""
    import httpx

    url, _ = server
    big = b"\x89PNG" + bytes(int(MAX_FILE_MB * 2**20) + 10)
    response = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", big, "image/png")}, timeout=30)
    assert response.status_code == 413 and "size" in response.text


def test_concurrent_requests_all_complete(server, tmp_path):
    url, _ = server
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    client = Client(url, verbose=False)
    jobs = []
    for i in range(8):
        files = [handle_file(str(bad))] if i == 4 else images(2 + i % 2)
        jobs.append((i, client.submit(files, api_name="/reconstruct")))
    for i, job in jobs:
        if i == 4:
            with pytest.raises(Exception, match="bad.jpg"):
                job.result(timeout=120)
        else:
            check_result(job.result(timeout=120), 2 + i % 2)


# ----------------------------------------------------------------------------------------- handlers
def handlers(tmp_path, model, **cfg):
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    cfg.setdefault("long_side", 112)
    models = ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"])
    return Handlers(WebConfig(work_root=tmp_path, **cfg), models)


def run_ui(h, files, fast=False, conf=None):
    """The "Reconstruct" button's handler as the page calls it; returns its outputs and the progress calls."""
    from app.engine.reconstruction import default_conf_percentile

    calls = []
    conf = default_conf_percentile(fast) if conf is None else conf
    out = h.run([str(p) for p in files], None, 1, None, fast, conf, True, False, "depth", None,
                progress=lambda fraction, desc=None: calls.append((fraction, desc)))
    return out, calls


def test_default_path_shows_sfm_sources_and_progress_through_the_stages(tmp_path):
    """A real demo scene: the cameras come from SfM (camera table, summary), the summary reports reprojection
    error and multi-view disagreement, and the progress bar moves forward through model, features, matching,
    mapping and dense fitting."""
    from app.web.handlers import stage_fraction

    model = CountingModel(tiny_model())
    h = handlers(tmp_path, model)
    (glb, gallery, table, downloads, _frames, status, scene), calls = run_ui(h, SFM_VIEWS)
    n = len(SFM_VIEWS)
    assert model.calls == 1
    assert list(table.columns[:3]) == ["view", "name", "source"]
    sources = list(table["source"])
    assert sources == scene.recon.pose_origins() and sources.count("sfm") >= n - 1
    registered = scene.recon.meta["sfm"]["registered_views"]
    assert registered == sources.count("sfm")
    assert f"**{registered}/{n} cameras from SfM**" in status
    error = scene.recon.meta["sfm"]["reprojection_px_mean"]
    assert f"reprojection error {error:.2f} px" in status and 0 < error < 4
    c = scene.recon.meta["consistency"]  # both figures: over all pixels and over the kept (confirmed) ones
    shown = lambda x: f"{100 * x:.1f}" if 100 * x >= 0.1 else f"{100 * x:.2g}"  # noqa: E731  (tiny ones: 2 digits)
    assert f"views disagree by {shown(c['median_depth_disagreement'])} % over all pixels" in status
    assert (f", {shown(c['cloud_median_depth_disagreement'])} % over the {100 * c['pixels_kept']:.0f} % of pixels "
            "confirmed") in status
    assert "network 112×80 px, depth 672×480 px" in status  # the stereo grid: at least 640 px on the long side
    assert "warning" not in status and scene.warnings == []
    cams = json.loads(Path(next(f for f in downloads if f.endswith("cameras.json"))).read_text())
    assert [e["source"] for e in cams["images"]] == sources
    # progress: one increasing fraction per line, every pipeline stage line mapped to its stage
    fractions = [f for f, _ in calls]
    assert all(0 < a < b < 1 for a, b in zip(fractions, fractions[1:])), calls
    lines = [m for _, m in calls]
    for line in lines:
        if line.startswith(("sfm:", "dense:")):
            assert stage_fraction(line) is not None, line
    reached = {stage: next(f for f, m in calls if m.startswith(prefix)) for stage, prefix in
               [("model", "running the model"), ("features", "sfm: SIFT"), ("matching", "sfm: matching"),
                ("mapping", "sfm: incremental mapping"), ("dense", "dense: stereo kept"), ("exports", "writing")]}
    assert list(reached.values()) == sorted(reached.values()) and reached["dense"] >= 0.8
    # the filters re-render the cached result; SfM points stay in every cloud
    from plyfile import PlyData

    def points(conf, frames=None):
        _glb, files, text, state = h.rerender(scene, conf, frames, True, False, "depth")
        count = PlyData.read(next(f for f in files if f.endswith(".ply")))["vertex"].count
        assert f"{count:,} points" in text and state is scene
        return count

    n_all = int(status.split("**")[3].split()[0].replace(",", ""))  # the run's render: confidence filter 0
    assert points(90) < n_all and points(0, frames=[0]) < n_all  # (the stereo cloud fills the viewer's cap below ~80)
    assert n_all > len(scene.recon.sfm_points) > 0
    assert model.calls == 1


def test_fast_preview_runs_the_network_only(tmp_path, monkeypatch):
    """Fast preview: one forward pass, no SfM, every camera from the network, the 50th-percentile filter."""
    import app.engine.cameras as cameras
    import app.engine.pipeline as pipeline
    import app.engine.sfm as sfm

    def no_sfm(*args, **kwargs):
        raise AssertionError("the fast preview ran SfM")

    monkeypatch.setattr(sfm, "run_sfm", no_sfm)
    monkeypatch.setattr(cameras, "run_sfm", no_sfm)
    monkeypatch.setattr(pipeline, "add_cameras", no_sfm)
    model = CountingModel(tiny_model())
    h = handlers(tmp_path, model)
    (_glb, _gallery, table, _downloads, _frames, status, scene), calls = run_ui(h, SFM_VIEWS, fast=True)
    assert model.calls == 1 and scene.fast
    assert list(table["source"]) == ["network"] * len(SFM_VIEWS) == scene.recon.pose_origins()
    assert "sfm" not in scene.recon.meta and scene.recon.valid is None and scene.recon.sfm_points is None
    assert not any(m.startswith(("sfm:", "dense:", "warning:")) for _, m in calls)
    assert "fast preview: cameras from the network" in status and "cameras from SfM" not in status
    disagreement = scene.recon.meta["consistency"]["median_depth_disagreement"]  # NaN: no two views overlap
    assert ("views disagree by" in status) == bool(np.isfinite(disagreement))
    assert "confirmed" not in status  # no view checks another in the fast preview
    assert scene.recon.depth_size == scene.recon.meta["network_size"] == (112, 80)
    n = int(status.split("**")[3].split()[0].replace(",", ""))
    assert n == pytest.approx(0.5 * len(SFM_VIEWS) * 112 * 80, abs=2)  # the fast preview's 50th percentile
    fractions = [f for f, _ in calls]
    assert all(a < b for a, b in zip(fractions, fractions[1:]))


def test_cameras_upload_is_the_clis_cameras_option(tmp_path):
    """An uploaded cameras.json with "keep the given poses": the cameras are exactly the file's and the table and
    the downloaded cameras.json say so; without the checkbox only its intrinsics are used; a bad upload is a
    one-line message naming the entry."""
    import gradio as gr

    from app.exports.project_formats import cameras_dict

    model = CountingModel(tiny_model())
    h = handlers(tmp_path, model)
    files = [str(p) for p in SFM_VIEWS[:3]]
    first = h.reconstruct_scene(files, None, 1, None, lambda f, m: None, fast=True)
    given = cameras_dict(first.recon)
    for entry in given["images"]:
        entry["K"][0][0] *= 1.1  # not what the network says
    (tmp_path / "cams.json").write_text(json.dumps(given))
    for fix in (True, False):
        out = h.run(files, None, 1, None, True, 50, True, False, "depth", None, [str(tmp_path / "cams.json")], fix,
                    progress=lambda *a, **k: None)
        table, downloads, status, scene = out[2], out[3], out[5], out[6]
        cams = json.loads(Path(next(f for f in downloads if f.endswith("cameras.json"))).read_text())["images"]
        assert list(table["intrinsics"]) == ["given"] * 3 == [c["intrinsics_source"] for c in cams]
        for c, g in zip(cams, given["images"]):
            np.testing.assert_array_equal(c["K"], g["K"])
            if fix:
                np.testing.assert_array_equal(c["cam_from_world"], g["cam_from_world"])
        assert list(table["source"]) == ["given" if fix else "network"] * 3
        assert ("3 given cameras" in status) == fix
    given["images"][1]["K"][2] = [0, 1, 1]
    (tmp_path / "bad.json").write_text(json.dumps(given))
    with pytest.raises(gr.Error, match=r"images\[1\].*K must be"):
        h.run(files, None, 1, None, True, 50, True, False, "depth", None, [str(tmp_path / "bad.json")], False,
              progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="cameras file: upload one"):
        h.run(files, None, 1, None, True, 50, True, False, "depth", None,
              [str(tmp_path / "cams.json"), str(tmp_path / "bad.json")], False, progress=lambda *a, **k: None)


def test_sfm_failure_is_a_warning_in_the_page(tmp_path, monkeypatch):
    """One view: no SfM; the pipeline's warning line becomes a toast and a line under the summary, and the
    camera table says where the cameras came from."""
    import app.web.handlers as web_handlers

    toasts = []
    monkeypatch.setattr(web_handlers.gr, "Warning", lambda message, *a, **k: toasts.append(message))
    h = handlers(tmp_path, CountingModel(tiny_model()))
    (_glb, _gallery, table, _downloads, _frames, status, scene), calls = run_ui(h, SFM_VIEWS[:1])
    assert len(scene.warnings) == 1 and scene.warnings[0].startswith("warning: one view")
    assert toasts == [scene.warnings[0].removeprefix("warning: ")]
    assert f"⚠ {scene.warnings[0]}" in status and "**0/1 cameras from SfM**" in status
    assert list(table["source"]) == ["network"]
    assert any(m == scene.warnings[0] for _, m in calls)


def test_progress_fractions_increase():
    """Stage lines jump to their stage, in the pipeline's order; other lines (an out-of-memory retry, a stage
    met again) still move the bar forward, never back."""
    from app.web.handlers import StageProgress, stage_fraction

    lines = [
        "reading uploads", "loading model mum-default", "preprocessed 6 views to 128 × 96 px",
        "running the model on cpu", "out of memory: retrying with 2 frame(s) per chunk",
        "sfm: SIFT features of 6 views",
        "sfm: matching all 15 pairs", "sfm: incremental mapping (15 verified pairs)",
        "sfm: 2 view(s) not registered: guided matching of 15 pairs, mapping again",
        "sfm: views still missing; mapping again with relaxed thresholds",
        "sfm: 1 view(s) not registered, placed from the network: a.png",
        "sfm: 5/6 views registered, 279 points, reprojection error 0.50 px (exported cameras)",
        "dense: depth fitted to SfM points in 5/6 views (median residual 4.1 %)",
        "dense: depth upsampled ×2 to 256 × 192 px, guided by the images",
        "dense: views agree to 0.3 % (median relative depth difference); 81 % of pixels confirmed by another view",
        "writing point cloud, cameras and exports", "colour-mapping depth and confidence",
    ]
    seen = []
    progress = StageProgress(lambda f, m: seen.append((f, m)))
    for line in lines:
        progress(line)
    assert [m for _, m in seen] == lines
    fractions = [f for f, _ in seen]
    assert all(0 < a < b < 1 for a, b in zip(fractions, fractions[1:])), seen
    for f, line in seen:
        if stage_fraction(line) is not None and line != lines[4]:
            assert f == stage_fraction(line)  # in this order every stage line lands on its own stage
    assert stage_fraction("sfm: matching 40 network-guided pairs (of 528)") == stage_fraction(lines[6])
    assert stage_fraction("warning: one view: cameras and depth come from the network alone") is not None
    # every stage line the pipeline can print has its place in the bar (f-string fields filled with "1")
    import re

    from web_support import REPO

    for module in ("app/engine/pipeline.py", "app/engine/sfm.py", "app/engine/cameras.py", "app/engine/dense_geometry.py",
                   "app/engine/multiview_stereo.py"):
        for literal in re.findall(r'(?:say|warn)\(f?"((?:sfm|dense|warning): [^"]*)"', (REPO / module).read_text()):
            line = re.sub(r"\{[^}]*\}", "1", literal)
            assert stage_fraction(line) is not None, f"{module}: no progress stage for {literal!r}"
    again = StageProgress(lambda f, m: None)
    for line in (lines[5], lines[6], lines[5], "something else", lines[6]):  # repeated and unknown lines
        before = again.fraction
        again(line)
        assert again.fraction > before


def test_confidence_default_follows_the_mode(tmp_path):
    """The CLI's rule in the page and the API: 0 on the default path, 50 for the fast preview; the slider starts
    at 0 and the fast-preview checkbox moves it."""
    import argparse

    from app.cli import conf_percentile
    from app.web.server import build_app
    from app.engine.reconstruction import default_conf_percentile
    from app.web.handlers import WebConfig
    from app.web.model_cache import ModelCache

    for fast in (False, True):
        cli = conf_percentile(argparse.Namespace(conf_percentile=None, fast=fast))
        assert default_conf_percentile(fast) == cli == WebConfig().api_percentile(fast) == (50 if fast else 0)
        assert WebConfig(api_conf_percentile=25).api_percentile(fast) == 25
    app = build_app(WebConfig(work_root=tmp_path), ModelCache("cpu", model="tiny", loader=lambda *a, **k: None,
                                                             presets=["tiny"]))
    blocks = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}
    assert blocks["conf"].value == 0 and blocks["fast"].value is False
    assert "Fast preview" in blocks["fast"].label
    toggle = [f for f in app.fns.values() if [b._id for b in f.inputs] == [blocks["fast"]._id]
              and [b._id for b in f.outputs] == [blocks["conf"]._id]]
    assert len(toggle) == 1 and toggle[0].fn(True) == 50 and toggle[0].fn(False) == 0
    run = next(f for f in app.fns.values() if f.name == "run")
    assert blocks["fast"]._id in [b._id for b in run.inputs]


def test_portrait_photos_run_at_the_models_size(tmp_path):
    """Portrait phone photos (1080 × 1920): unless ``--size`` is given the network runs at the model's own size
    (the bundled model: ``cfg.image_size`` = 128 → 80 × 128 px; users saw 64 × 128 and 4,096 points per view
    with the fast preview's 50th percentile before halves rounded up); the default path fits a dense grid of at
    least 256 px on the long side and keeps every confirmed point."""
    import cv2

    heads = pytest.importorskip("heads")
    from mum.io import network_size

    paths = []
    for p in SFM_VIEWS[:4]:
        portrait = cv2.resize(cv2.imread(str(p))[:, 185:455], (1080, 1920), interpolation=cv2.INTER_CUBIC)
        paths.append(tmp_path / f"{p.stem}.jpg")
        cv2.imwrite(str(paths[-1]), portrait, [cv2.IMWRITE_JPEG_QUALITY, 90])
    model = heads.load_model("mum-default", device="cpu")
    h = handlers(tmp_path, model, long_side=None)
    expected = network_size(1080, 1920, model.cfg.image_size, model.patch_size)
    (*_, fast_status, fast), _ = run_ui(h, paths, fast=True)
    (*_, status, scene), _ = run_ui(h, paths)
    for s in (fast, scene):
        assert s.recon.meta["network_size"] == expected and max(expected) == model.cfg.image_size
    assert max(scene.recon.depth_size) >= 256 and scene.recon.depth_size[1] > scene.recon.depth_size[0]
    shown = [int(t.split("**")[3].split()[0].replace(",", "")) for t in (fast_status, status)]
    assert shown[0] == pytest.approx(len(paths) * expected[0] * expected[1] // 2, abs=len(paths))
    assert shown[1] > 2 * shown[0]
    sized = handlers(tmp_path, model, long_side=192)  # --size still wins
    (*_, sized_scene), _ = run_ui(sized, paths[:2], fast=True)
    assert max(sized_scene.recon.meta["network_size"]) == 192


# ------------------------------------------------------------------------------- re-render from state
def test_rerender_changes_points_without_running_the_model(tmp_path):
    from plyfile import PlyData

    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    model = CountingModel(tiny_model())
    cfg = WebConfig(work_root=tmp_path, long_side=112)
    h = Handlers(cfg, ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"]))
    # the fast preview: every pixel of every view is a point, so the counts below are exact
    scene = h.reconstruct_scene([str(p) for p in DEMO_IMAGES[:3]], None, 1, None, lambda f, m: None, fast=True)
    assert model.calls == 1

    def points(conf, frames=None, cams=True, mask=False, source="depth"):
        glb, downloads, status, state = h.rerender(scene, conf, frames, cams, mask, source)
        assert state is scene
        ply = next(f for f in downloads if f.endswith(".ply"))
        n = PlyData.read(ply)["vertex"].count
        cameras = sum(k.startswith("camera_") for k in trimesh.load(glb).geometry)
        assert f"{n:,} points" in status
        return n, cameras

    n0, c0 = points(0)
    n50, _ = points(50)
    n90, _ = points(90)
    assert n0 > n50 > n90 > 0 and c0 == 3
    n_one, _ = points(0, frames=[1])
    assert n_one == n0 // 3
    n_all, _ = points(0, frames=[0, 1, 2])
    assert n_all == n0
    _, no_cams = points(50, cams=False)
    assert no_cams == 0
    n_mask, _ = points(0, mask=True)
    assert n_mask <= n0
    n_pm, _ = points(50, source="pointmap")
    assert n_pm > 0
    assert model.calls == 1  # every re-render came from the cached prediction
    assert len(list(scene.workdir.glob("render_*"))) == 1  # old renders are cleaned up


def test_rerender_without_a_result_is_a_no_op():
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    h = Handlers(WebConfig(), ModelCache("cpu", model="tiny", loader=lambda *a, **k: None, presets=["tiny"]))
    *_, state = h.rerender(None, 50, None, True, False, "depth")
    assert state is None


def test_model_cache_loads_each_model_once():
    from app.web.model_cache import ModelCache

    loaded = []
    cache = ModelCache("cpu", model="a", loader=lambda name, weights=None, device=None: loaded.append(name) or name,
                       presets=["a", "b"])
    assert cache.get(None) == "a" and cache.get("a") == "a" and cache.get("b") == "b"
    assert loaded == ["a", "b"] and cache.loads == 2
    with_weights = ModelCache("cpu", model="a", weights="/weights/w.safetensors", loader=lambda *a, **k: k, presets=["a"])
    assert with_weights.default == "a + w.safetensors"
    assert with_weights.get(None)["weights"] == "/weights/w.safetensors"


def test_depth_and_confidence_images():
    from app.exports.plots import confidence_image, depth_image

    depth = np.linspace(1, 5, 20 * 30).reshape(20, 30)
    depth[0, 0] = np.nan
    img = depth_image(depth)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8 and (img[0, 0] == 0).all()
    assert not np.array_equal(img[1, 1], img[-1, -1])
    conf = confidence_image(1 + np.random.default_rng(0).random((8, 8)) * 10)
    assert conf.shape == (8, 8, 3)


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--max-views", "1"], ["--max-file-mb", "0.5"], ["--size", "-5"],
                                  ["--concurrency", "0"], ["--device", "mps"], ["--model", "nosuch"],
                                  ["--max-disk-mb", "10"]])
def test_bad_server_options_are_one_line_errors(argv, capsys):
    """Refused before the server starts, with one line (Gradio used to raise mid-start-up)."""
    from app.web.server import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_port_in_use_is_a_one_line_error(capsys):
    import socket

    from app.web.server import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--quiet"]) == 2
    assert "cannot serve on" in capsys.readouterr().err
    import tempfile

    assert not (Path(tempfile.gettempdir()) / f"mum-web-{port}").exists()  # the Gradio folder it made is gone


def test_request_pixel_bound_is_checked_from_headers(tmp_path):
    """Many large images in one request are refused before anything is decoded; the same images within the
    server's budget (or sampled down to fewer views) pass."""
    import cv2

    from app.web.handlers import WebConfig, check_request_pixels
    from mum.errors import UserError

    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.zeros((1000, 2000, 3), np.uint8))  # 2 Mpx each
        paths.append(p)
    check_request_pixels(paths, 4, WebConfig(max_request_mpx=8.5))
    check_request_pixels(paths, 2, WebConfig(max_request_mpx=4.5))  # only 2 views will be used
    with pytest.raises(UserError, match="8 megapixels"):
        check_request_pixels(paths, 4, WebConfig(max_request_mpx=7.5))



def _dense_memory_refusal() -> None:
    from app.engine.multiview_stereo import check_memory

    check_memory(100, 640, 480, available=2**20)


def _no_pose_to_keep() -> None:
    from app.engine.known_cameras import known_cameras

    known_cameras(["a.png"], [(64, 48)], fix_poses=True)


def _too_many_pixels(tmp_path) -> None:
    from PIL import Image

    from mum.io import check_image_header

    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    check_image_header(tmp_path / "big.png", max_pixels=100)  # over the (server's) pixel limit


@pytest.mark.parametrize("refusal", [_dense_memory_refusal, _no_pose_to_keep, _too_many_pixels],
                         ids=["dense memory", "poses to keep", "too many pixels"])
def test_the_page_names_its_own_controls_not_the_commands_options(refusal, tmp_path):
    """The engine's refusals advise the command's options (--dense-size, --fix-poses, --max-pixels ...); the page
    shows the same refusal with its own controls or what the visitor can do (the dense stage's size and the pixel
    limit are the server's settings)."""
    import inspect

    from app.web.handlers import tidy_message
    from mum.errors import UserError

    with pytest.raises(UserError) as err:
        refusal(*([tmp_path] if inspect.signature(refusal).parameters else []))
    engine = str(err.value)
    page = tidy_message(engine)
    assert "--" in engine and "--" not in page and "MUM_" not in page, page
    assert "“" in page or "upload" in page  # a control of the page, by its label, or what to upload instead


def test_progress_lines_reach_the_page_without_server_paths_or_options():
    """A progress line names a server path and an option (the cameras stage with given poses): the page's progress
    bar gets the file's name and the control's label."""
    from app.web.handlers import StageProgress

    shown = []
    line = f"cameras: {tempfile.gettempdir()}/up/1234/cameras.json gives the intrinsics of 3/3 views (kept: --fix-poses)"
    StageProgress(lambda fraction, message: shown.append(message))(line)
    assert shown == ["cameras: cameras.json gives the intrinsics of 3/3 views (kept: “Keep the given poses”)"]


def test_a_disk_budget_below_the_example_scenes_is_refused(capsys):
    """``--max-disk-mb 8 --max-file-mb 1``: the page's example images (about 7 MB, kept in its folder) left no room,
    and every upload was refused as 'disk full'. Refused at start-up, saying why; 10 MB passes the check."""
    import argparse

    from app.web.server import check_args, examples_size_mb, main

    assert 1 < examples_size_mb() < 9
    assert main(["--max-disk-mb", "8", "--max-file-mb", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "example scenes" in err[0], err
    args = argparse.Namespace(**{name: None for name in ("port", "max_files", "max_views", "window", "max_file_mb",
                                                         "max_request_mpx", "concurrency", "max_queue",
                                                         "max_sessions", "size", "chunk_size", "max_disk_mb",
                                                         "model_cache_mb")})
    args.max_disk_mb, args.max_file_mb = "10", "1"
    check_args(args)
    assert args.max_disk_mb == 10.0


def test_uploads_of_one_name_get_readable_names_and_match_a_cameras_file(tmp_path):
    """``a/img.jpg``, ``b/img.jpg`` and ``t2.jpg`` uploaded together: Gradio keeps them in hash-named folders, and
    those hashes named every view (``<sha256>/t2.jpg``), so a cameras file posing ``t2.jpg`` matched nothing.
    Now ``img.jpg``, ``img (2).jpg`` and ``t2.jpg``, and the given pose is kept."""
    from PIL import Image

    from app.web.handlers import WebConfig, known_for_uploads, open_inputs

    uploads = []
    for k, rel in enumerate(["1f3a/img.jpg", "9c0d/img.jpg", "77aa/t2.jpg"]):
        path = tmp_path / "gradio" / rel
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((30, 40 + 4 * k, 3), 60 * k, np.uint8)).save(path)
        uploads.append(str(path))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    source = open_inputs(uploads, WebConfig(), scratch)
    assert source.names == ["img.jpg", "img (2).jpg", "t2.jpg"]
    assert [size[0] for size in source.sizes] == [40, 44, 48]  # each name is its own upload
    K = [[50.0, 0, 23.5], [0, 50.0, 14.5], [0, 0, 1]]
    (tmp_path / "cameras.json").write_text(json.dumps({"images": [
        {"name": "t2.jpg", "width": 48, "height": 30, "K": K, "cam_from_world": np.eye(4).tolist()}]}))
    known = known_for_uploads(uploads, source, tmp_path / "cameras.json", True, lambda _m: None)
    assert known.posed.tolist() == [False, False, True]


def test_a_result_being_rendered_outlives_its_replacement_until_it_expires(tmp_path):
    """A filter moved while a new Reconstruct of the same session finished: the new result replaced the old one
    and deleted it under the running render ('this result was removed … run the reconstruction again', links that
    answered 403). It is kept, as a retired result, until it expires like an API result's files."""
    from app.web.session import ResultStore, WebScene

    store = ResultStore(tmp_path / "work", budget_bytes=1 << 30, api_ttl_s=600)
    old, new = (WebScene.create(None, root=tmp_path / "scenes") for _ in range(2))
    store.add_session("session", old, [])
    with store.using(old):
        store.add_session("session", new, [])
        assert not old.closed and old.workdir.is_dir()  # the render goes on
    store.tick()
    assert not old.closed  # its files can still be fetched
    store.api_ttl_s = 0
    store.tick()
    assert old.closed and not new.closed
    store.add_session("session", WebScene.create(None, root=tmp_path / "scenes"), [])
    assert new.closed  # a result nobody is rendering goes at once, as before
