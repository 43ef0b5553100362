"""The web app over HTTP with ``gradio_client``: the ``/reconstruct`` API, bad uploads, concurrent requests, and
re-rendering from the cached prediction without running the model again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
trimesh = pytest.importorskip("trimesh")
from gradio_client import Client, handle_file
from web_support import DEMO_IMAGES, CountingModel, start_server, tiny_model

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


def check_result(result, n_views: int) -> None:
    """cameras.json in the CLI's schema with one entry per view; GLB with one frustum per view; PLY parses."""
    from plyfile import PlyData

    glb, ply, cams = result
    data = json.loads(Path(cams).read_text())
    assert data["images"] and len(data["images"]) == n_views
    assert set(data) == {"convention", "images"}
    for entry in data["images"]:
        assert set(entry) == {"name", "width", "height", "K", "cam_from_world"}
        assert (entry["width"], entry["height"]) == (640, 480)
        assert np.asarray(entry["K"]).shape == (3, 3) and np.asarray(entry["cam_from_world"]).shape == (4, 4)
    assert [e["name"] for e in data["images"]] == [p.name for p in DEMO_IMAGES[:n_views]]
    scene = trimesh.load(glb)
    assert sum(name.startswith("camera_") for name in scene.geometry) == n_views
    assert "points" in scene.geometry
    vertex = PlyData.read(ply)["vertex"]
    assert vertex.count == len(scene.geometry["points"].vertices) > 0


def test_api_reconstruct_returns_cli_exports(server, client):
    _url, model = server
    before = model.calls
    check_result(client.predict(images(3), api_name="/reconstruct"), 3)
    assert model.calls == before + 1


def test_api_is_documented(client):
    info = client.view_api(print_info=False, return_format="dict")
    assert "/reconstruct" in info["named_endpoints"]
    assert list(info["named_endpoints"]) == ["/reconstruct"]  # UI-only events stay out of the API page


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


# ------------------------------------------------------------------------------- re-render from state
def test_rerender_changes_points_without_running_the_model(tmp_path):
    from plyfile import PlyData

    from app.web_handlers import Handlers, WebConfig
    from app.web_models import ModelCache

    model = CountingModel(tiny_model())
    cfg = WebConfig(work_root=tmp_path, long_side=112)
    h = Handlers(cfg, ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"]))
    scene = h.reconstruct_scene([str(p) for p in DEMO_IMAGES[:3]], None, 1, None, lambda f, m: None)
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
    from app.web_handlers import Handlers, WebConfig
    from app.web_models import ModelCache

    h = Handlers(WebConfig(), ModelCache("cpu", model="tiny", loader=lambda *a, **k: None, presets=["tiny"]))
    *_, state = h.rerender(None, 50, None, True, False, "depth")
    assert state is None


def test_model_cache_loads_each_model_once():
    from app.web_models import ModelCache

    loaded = []
    cache = ModelCache("cpu", model="a", loader=lambda name, weights=None, device=None: loaded.append(name) or name,
                       presets=["a", "b"])
    assert cache.get(None) == "a" and cache.get("a") == "a" and cache.get("b") == "b"
    assert loaded == ["a", "b"] and cache.loads == 2
    with_weights = ModelCache("cpu", model="a", weights="/weights/w.safetensors", loader=lambda *a, **k: k, presets=["a"])
    assert with_weights.default == "a + w.safetensors"
    assert with_weights.get(None)["weights"] == "/weights/w.safetensors"


def test_depth_and_confidence_images():
    from app.plots import confidence_image, depth_image

    depth = np.linspace(1, 5, 20 * 30).reshape(20, 30)
    depth[0, 0] = np.nan
    img = depth_image(depth)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8 and (img[0, 0] == 0).all()
    assert not np.array_equal(img[1, 1], img[-1, -1])
    conf = confidence_image(1 + np.random.default_rng(0).random((8, 8)) * 10)
    assert conf.shape == (8, 8, 3)


@pytest.mark.parametrize("argv", [["--port", "99999"], ["--max-views", "1"], ["--max-file-mb", "0.5"], ["--size", "-5"],
                                  ["--concurrency", "0"], ["--device", "mps"], ["--model", "nosuch"]])
def test_bad_server_options_are_one_line_errors(argv, capsys):
    """Refused before the server starts, with one line (Gradio used to raise mid-start-up)."""
    from app.web import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_port_in_use_is_a_one_line_error(capsys):
    import socket

    from app.web import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--quiet"]) == 2
    assert "cannot serve on" in capsys.readouterr().err
