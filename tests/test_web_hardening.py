"""Issue 26's web app rows, one test each: a COLMAP upload whose ``points3D.bin`` claims 2^40 points (row 5),
SIGTERM during and after a default-path request (row 6), videos whose container lies (rows 8, 9), presets
without weights and the model cache (row 14), the random-weights note (row 15), the disk budget enforced at
upload time (row 16), ``mum-web``'s numeric options (row 17) and malformed cameras files (row 18).

The in-process server has a Gradio folder of its own (``GRADIO_TEMP_DIR``) and the tiny random-weight model at
112 px; the SIGTERM tests run ``mum-web`` as a process with a private ``TMPDIR``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from web_support import (DEMO_IMAGES, REPO, SFM_VIEWS, files_in, free_port, rss_mb, start_server, tiny_model,
                         wait_for, wait_http)

from tests.test_hardening import _mkv_duration, _video

BUDGET_MB = 24.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradio-own")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(folder))
    app, url, _ = start_server(tiny_model(), folder, max_file_mb=16.0, max_disk_mb=BUDGET_MB, own_gradio_dir=True,
                               janitor_s=0.5, upload_ttl_s=600, api_ttl_s=120)
    baseline = files_in(folder)
    yield type("Server", (), dict(app=app, url=url, folder=folder, store=app.result_store, baseline=baseline))
    app.close()
    patch.undo()


@pytest.fixture
def client(server, tmp_path):
    return Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))


def _api_error(client, files, cameras=None, fast=True) -> str:
    """The one-line message a failing ``/reconstruct`` call shows the visitor."""
    with pytest.raises(Exception) as info:
        client.submit(files, fast, cameras or None, False, api_name="/reconstruct").result(timeout=120)
    return str(info.value)


def _visitor_message(text: str, server) -> None:
    assert "\n" not in text.strip() and "Traceback" not in text, text
    for secret in (str(server.folder), "/tmp/", "mum-cameras-", "gradio-own"):
        assert secret not in text, text


# --------------------------------------------------------------------------------------- row 5
def test_row5_colmap_upload_claiming_2e40_points(server, client, tmp_path):
    """Row 5: an 8-byte points3D.bin claiming 2^40 points with cameras.bin + images.bin took the server to
    17.4 GB, stalled every client for 59 s and ended with std::bad_alloc naming the server's temp path. It is
    refused from the file's size, at once, in one line naming the file."""
    from tests.test_fuzz_readers import _colmap_model

    model = tmp_path / "model"
    names = [p.name for p in DEMO_IMAGES[:2]]
    _colmap_model([{"name": n, "width": 640, "height": 480, "K": [[525, 0, 319.5], [0, 525, 239.5], [0, 0, 1]],
                    "cam_from_world": np.eye(4).tolist()} for n in names], model)
    (model / "points3D.bin").write_bytes(struct.pack("<Q", 2**40))
    cameras = [handle_file(str(model / f"{n}.bin")) for n in ("cameras", "images", "points3D")]
    rss0 = rss_mb()
    start = time.perf_counter()
    done = threading.Event()
    answers = []

    def poll_config():  # other clients keep being answered meanwhile
        while not done.is_set():
            t = time.perf_counter()
            urllib.request.urlopen(server.url + "config", timeout=30).read()
            answers.append(time.perf_counter() - t)
            time.sleep(0.05)

    poller = threading.Thread(target=poll_config)
    poller.start()
    try:
        message = _api_error(client, [handle_file(str(p)) for p in DEMO_IMAGES[:2]], cameras)
    finally:
        done.set()
        poller.join()
    assert "points3D.bin: not a valid COLMAP binary file (declares 1,099,511,627,776 3D points" in message, message
    _visitor_message(message, server)
    assert time.perf_counter() - start < 20 and rss_mb() - rss0 < 300
    assert answers and max(answers) < 5


# --------------------------------------------------------------------------------------- row 18
CAMERAS_CASES = {
    "images a dict": ({"images": {"a": 1}}, "'images' is not a list"),
    "cameras empty list": ({"cameras": []}, "'cameras' is not an object"),
    "K 2x2": ({"images": [{"name": "x.png", "width": 640, "height": 480, "K": [[1, 0], [0, 1]]}]}, "images[0]"),
    "camera_angle_x 0": ({"camera_angle_x": 0, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist(),
                                                            "w": 640, "h": 480}]}, "camera_angle_x"),
    "frame a number": ({"frames": [5]}, "frames[0]"),
    "deep": ("[" * 5000 + "]" * 5000, "nested too deeply"),
}


@pytest.mark.parametrize("case", list(CAMERAS_CASES))
def test_row18_malformed_cameras_uploads_are_the_clis_one_line(server, client, tmp_path, caplog, case):
    """Row 18: the visitor saw raw Python text ("'list' object has no attribute 'items'", "float division by
    zero") naming no file or entry, and the server log had tracebacks."""
    document, needle = CAMERAS_CASES[case]
    path = tmp_path / "cameras.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with caplog.at_level(logging.INFO, logger="mum.web"):
        message = _api_error(client, [handle_file(str(p)) for p in DEMO_IMAGES[:2]], [handle_file(str(path))])
    assert message.count("cameras.json") >= 1 and needle in message, message
    _visitor_message(message, server)
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the server log"


# --------------------------------------------------------------------------------------- rows 8, 9
def test_rows8_9_videos_whose_container_lies(tmp_path):
    """A WebM/MKV without a Duration (what MediaRecorder writes) and an AVI claiming 2^32 frames: the web app
    takes the frames that decode, sampled over the whole video, in the memory of a normal request."""
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache
    from tests.test_hardening import _claim_avi_frames

    model = tiny_model()
    h = Handlers(WebConfig(work_root=tmp_path / "work", long_side=112, max_views=4),
                 ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"]))
    for video, frames in ((_mkv_duration(_video(tmp_path / "a.mkv", 50), None), [0, 16, 33, 49]),
                          (_claim_avi_frames(_video(tmp_path / "b.avi", 20), 2**32 - 1), [0, 6, 13, 19])):
        scene = h.reconstruct_scene([str(video)], None, 1, None, lambda f, m: None, fast=True)
        assert [int(n[6:12]) for n in scene.recon.names] == frames
        scene.close()


# --------------------------------------------------------------------------------------- rows 14, 15
def test_row14_presets_without_weights_are_not_offered():
    """Row 14: any visitor could pick ``vggt-1b`` or ``mum-vitl16`` (random weights, gigabytes each) and pin
    8.2 GB in the model cache. Only models with weights are offered unless the operator allows the others."""
    import heads
    from app.web.model_cache import ModelCache

    loader = lambda *a, **k: None  # noqa: E731
    assert ModelCache("cpu", loader=loader).labels == [heads.DEFAULT_MODEL]
    allowed = ModelCache("cpu", loader=loader, allow_random=True).labels
    assert set(heads.PRESETS) < set(allowed) and allowed[0] == heads.DEFAULT_MODEL
    chosen = ModelCache("cpu", model="mum-vitl16", loader=loader)  # the operator's own choice is served
    assert chosen.labels == ["mum-vitl16", heads.DEFAULT_MODEL] and chosen.random_weights("mum-vitl16")
    assert not chosen.random_weights(heads.DEFAULT_MODEL)
    from mum.errors import UserError

    with pytest.raises(UserError, match="unknown model 'vggt-1b'"):
        ModelCache("cpu", loader=loader).get("vggt-1b")


def test_row14_the_model_cache_is_bounded_in_bytes_and_evicts():
    """Loaded models are kept within ``max_bytes`` (least recently used evicted); a model larger than the whole
    budget is refused before it is loaded (its size from its config on the meta device)."""
    import torch

    from app.web.model_cache import ModelCache, default_sizer, model_bytes
    from mum.errors import UserError

    sizes = {"a": 1000, "b": 1000, "c": 3000, "huge": 10**9}  # floats: 4 bytes each
    loaded = []

    def loader(name, weights=None, device=None):
        loaded.append(name)
        return torch.nn.Linear(sizes[name] - 1, 1)  # (n - 1) weights + 1 bias

    cache = ModelCache("cpu", model="a", loader=loader, presets=list(sizes), random_presets=[],
                       max_bytes=16_000, sizer=lambda name, weights: 4 * sizes[name])
    cache.get("a"), cache.get("b"), cache.get("a")
    assert cache.cached_bytes == 8000 and loaded == ["a", "b"]
    cache.get("c")  # 12 KB: b (least recently used) goes, a stays
    assert cache.cached_bytes == 16_000 and cache.evictions == 1
    cache.get("b")  # a goes now
    assert loaded == ["a", "b", "c", "b"] and cache.cached_bytes == 16_000
    with pytest.raises(UserError, match="more than this server keeps for models"):
        cache.get("huge")
    assert loaded[-1] == "b"  # never built
    import heads

    assert default_sizer("mum-tiny") == model_bytes(heads.load_model("mum-tiny", device="cpu"))  # before building
    assert default_sizer("mum-vitl16") > 2 * 2**30 and default_sizer("vggt-1b") > 4 * 2**30
    assert model_bytes(torch.nn.Linear(3, 1)) == 16


def test_row15_random_weights_are_said_in_the_status(tmp_path):
    """Row 15: a preset with random weights gave a normal-looking status line (the CLI prints a note)."""
    from app.web.handlers import Handlers, WebConfig, summary
    from app.web.model_cache import ModelCache

    model = tiny_model()
    for random_presets, expected in ((["tiny"], True), ([], False)):
        h = Handlers(WebConfig(work_root=tmp_path / "work", long_side=112),
                     ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"],
                                random_presets=random_presets))
        scene = h.reconstruct_scene([str(p) for p in DEMO_IMAGES[:2]], None, 1, None, lambda f, m: None, fast=True)
        assert ("random weights" in summary(scene, 10)) is expected
        scene.close()


# --------------------------------------------------------------------------------------- row 16
def _aborted_upload(url: str, size: int, send: int) -> None:
    """Start a multipart upload declaring ``size`` bytes, send ``send`` of them, and hang up."""
    host, port = url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = b'--XX\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
        s.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX"
                  b"\r\nContent-Length: " + str(size).encode() + b"\r\n\r\n" + head)
        try:
            for _ in range(send // 65536):
                s.sendall(os.urandom(65536))
        except OSError:  # refused or cut off by the server: what is tested
            pass


def _read_until_closed(s: socket.socket) -> str:
    """The whole answer of a server that closes the connection after it (headers and body may come apart)."""
    chunks = []
    while chunk := s.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_row16_the_disk_budget_holds_at_upload_time(server):
    """Row 16: with --max-disk-mb 64, 269 aborted 30 MB uploads in 25 s took the upload folder to 7.7 GB (120x
    the budget), 1.5 GB still there 35 s later: the budget was only enforced by a 30 s janitor. Now an upload
    that does not fit is refused before a byte of it is stored, and what a cut-off one left goes at once."""
    budget = int(BUDGET_MB * 2**20)
    peak = {"bytes": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["bytes"] = max(peak["bytes"], sum(files_in(server.folder).values()))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        threads = [threading.Thread(target=_aborted_upload, args=(server.url, 15 * 2**20, 10 * 2**20))
                   for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for _ in range(8):  # and one after another
            _aborted_upload(server.url, 15 * 2**20, 10 * 2**20)
    finally:
        stop.set()
        sampler.join()
    assert peak["bytes"] <= budget, (peak["bytes"] / 2**20, BUDGET_MB)
    left = lambda: {k: v for k, v in files_in(server.folder).items() if k not in server.baseline}  # noqa: E731
    assert wait_for(lambda: not left(), 10), left()
    # refused at once: the answer comes before the body is sent
    host, port = server.url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX"
                  b"\r\nContent-Length: " + str(budget * 2).encode() + b"\r\n\r\n")
        answer = _read_until_closed(s)
    assert answer.startswith("HTTP/1.1 413") and "disk is full" in answer, answer
    assert server.store._reserved == 0 and server.store._uploading == 0


# --------------------------------------------------------------------------------------- row 17
@pytest.mark.parametrize("argv, env", [
    (["--max-disk-mb", "inf"], {}), (["--max-file-mb", "1e30"], {}), ([], {"MUM_WEB_MAX_DISK_MB": "abc"}),
    (["--port", "1e3"], {}), (["--concurrency", "1e30"], {}), ([], {"MUM_WEB_PORT": "nan"}),
    (["--max-request-mpx=-inf"], {}), (["--model-cache-mb", "0"], {}), (["--size", "99999"], {}),
])
def test_row17_bad_numbers_are_one_line(capsys, monkeypatch, argv, env):
    """Row 17: ``--max-disk-mb inf``, ``--max-file-mb 1e30``, ``MUM_WEB_MAX_DISK_MB=abc`` gave OverflowError /
    ValueError tracebacks."""
    from app.web.server import main

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv + ["--model", "mum-tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err


# --------------------------------------------------------------------------------------- row 6 (web)
def _serve(port: int, tmp: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_TEMP_DIR", "TORCHINDUCTOR_CACHE_DIR")}
    env.update(TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "app.web.server", "--port", str(port), "--model", "mum-tiny", "--size",
                             "112", "--quiet"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))


@pytest.mark.parametrize("when", ["after", "during"])
def test_row6_sigterm_stops_the_web_app_cleanly(tmp_path, when):
    """Row 6: ``docker stop`` of the web app after a default-path request died with glog's stack dump and left
    ``/tmp/mum-web-PORT`` (6.4 MB), ``mum-sfm-*`` behind. Now: exit 143, one line, the private TMPDIR empty,
    also when the signal comes while a default-path request runs SfM (it stops at its next stage)."""
    private = tmp_path / "tmp"
    private.mkdir()
    port = free_port()
    proc = _serve(port, private)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "downloads"))
        job = client.submit([handle_file(str(p)) for p in SFM_VIEWS], False, None, False, api_name="/reconstruct")
        if when == "after":
            job.result(timeout=300)
        else:
            assert wait_for(lambda: any(p.name.startswith("mum-sfm-") for p in private.iterdir()), 120)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 143, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:") or "Traceback" in line
             or "Aborted" in line]
    assert lines == ["error: interrupted (SIGTERM)"], err
    assert sorted(p.name for p in private.iterdir()) == []
