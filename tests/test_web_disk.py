"""The web app's temporary disk: an API call leaves nothing behind once its files are downloaded, results nobody
downloads stay within the disk budget (oldest evicted first), refused uploads are deleted at once, a request that
does not fit in the budget is refused, sessions evicted by ``--max-sessions``, replaced or closed lose their
folders and uploads, only the server's own files are ever deleted, and a server stopped with SIGTERM leaves
nothing. A bounded soak test on 127.0.0.1 (sequential and concurrent requests, garbage among them) checks that
disk and memory stay under stated bounds and that the server keeps answering.

The server runs with a Gradio folder of its own (``GRADIO_TEMP_DIR``), so that the folder's contents are exactly
what the server keeps: the example scenes' files (Gradio's cache of ``gr.Examples``) and nothing else between
requests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file
from web_support import DEMO_IMAGES, CountingModel, files_in, rss_mb, start_server, tiny_model, wait_for

MAX_FILES = 6
MAX_FILE_MB = 24.0
BUDGET_MB = 48.0  # --max-disk-mb of the test server
SOAK_DISK_MB = BUDGET_MB  # stated bound: the server's files in flight (measured: 20 MB, one garbage upload)
SOAK_RSS_GROWTH_MB = 300  # stated bound: the process's memory after the soak vs. after the first request
SOAK_TIME_S = 60


def disk(folder: Path) -> int:
    return sum(files_in(folder).values())


def images(n: int) -> list:
    return [handle_file(str(p)) for p in DEMO_IMAGES[:n]]


def call(client: Client, files: list, timeout: float = 60.0):
    """One fast-path ``/reconstruct`` call, bounded in time."""
    return client.submit(files, True, api_name="/reconstruct").result(timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradio-own")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADIO_TEMP_DIR", str(folder))
    model = CountingModel(tiny_model())
    app, url, _ = start_server(
        model, folder, max_files=MAX_FILES, max_file_mb=MAX_FILE_MB, max_disk_mb=BUDGET_MB, own_gradio_dir=True,
        janitor_s=0.5, upload_ttl_s=3, api_ttl_s=120,
    )
    baseline = files_in(folder)  # the example scenes' files, cached by Gradio when the app was built
    assert all(size > 0 for size in baseline.values())
    yield SimpleNamespace(app=app, url=url, folder=folder, store=app.result_store, model=model, baseline=baseline)
    app.close()
    patch.undo()


@pytest.fixture
def client(server, tmp_path):
    # results are downloaded outside the server's folder (gradio_client's default is Gradio's folder)
    return Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))


def back_to_baseline(server, timeout: float = 10.0) -> bool:
    return wait_for(lambda: files_in(server.folder) == server.baseline, timeout)


def check(result, n_views: int) -> None:
    glb, ply, cams = result
    assert len(json.loads(Path(cams).read_text())["images"]) == n_views
    assert Path(glb).stat().st_size > 0 and Path(ply).stat().st_size > 0


def test_api_calls_leave_no_files_behind(server, client):
    """Each call's uploads go when it returns, its result folder once the client has downloaded the files:
    20 calls leave the server's folder as it was (before: 16.2 MB after 31 calls, kept for 6 hours)."""
    base = disk(server.folder)
    peaks = []
    for i in range(20):
        check(call(client, images(2 + i % 2)), 2 + i % 2)
        peaks.append(disk(server.folder) - base)
    assert back_to_baseline(server), sorted(set(files_in(server.folder)) - set(server.baseline))
    assert max(peaks) < 4 * 2**20  # at most one call's result, waiting for its download
    stats = server.store.stats()
    assert stats["api"] == 0 and stats["sessions"] == 0 and stats["claims"] == 0


def test_results_nobody_downloads_stay_within_the_budget(server, tmp_path):
    """A client that never fetches its files: the results wait (for ``api_ttl_s``), but never beyond the
    budget; the oldest go first, the newest stays downloadable."""
    import httpx

    store, base = server.store, disk(server.folder)
    lazy = Client(server.url, verbose=False, download_files=False)
    budget = store.budget_bytes
    store.budget_bytes = base + 3 * 2**20
    try:
        urls = []
        for _ in range(12):
            glb, _ply, _cams = call(lazy, images(3))
            urls.append(glb["url"])
            assert disk(server.folder) <= store.budget_bytes
        assert server.store.stats()["api"] < 12  # some were evicted ...
        assert httpx.get(urls[0], timeout=30).status_code in (403, 404)  # ... the oldest first
        assert httpx.get(urls[-1], timeout=30).status_code == 200  # the newest can still be downloaded
    finally:
        store.budget_bytes = budget
        api_ttl, store.api_ttl_s = store.api_ttl_s, 0
        store.tick()  # what is left expires
        store.api_ttl_s = api_ttl
    assert back_to_baseline(server)


def _garbage(tmp: Path) -> dict[str, tuple[list, str]]:
    """Refused submissions: the files and a piece of the message each gets."""
    big = []
    for i in range(2):  # like the review's two 50 MB submissions, at this server's file size limit
        path = tmp / f"noise{i}.png"
        path.write_bytes(os.urandom(int(20 * 2**20)))
        big.append(path)
    text = tmp / "notes.txt"
    text.write_text("not an image")
    empty = tmp / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp / "truncated.png"
    truncated.write_bytes(DEMO_IMAGES[0].read_bytes()[:5000])
    return {
        "20 MB of noise": ([handle_file(str(big[0]))], "noise0.png"),
        "another 20 MB": ([handle_file(str(big[1])), *images(1)], "noise1.png"),
        "wrong type": ([handle_file(str(text)), *images(1)], "not an image"),
        "empty file": ([handle_file(str(empty))], "empty.jpg"),
        "truncated image": ([handle_file(str(truncated)), *images(2)], "truncated.png"),
        "too many files": ([handle_file(str(DEMO_IMAGES[i])) for i in range(MAX_FILES + 1)], "too many files"),
    }


def test_refused_uploads_are_deleted_at_once(server, client, tmp_path):
    """When the error comes back, the submission's files are gone already, good ones among them included."""
    for case, (files, message) in _garbage(tmp_path).items():
        with pytest.raises(Exception, match=message):
            call(client, files)
        left = sorted(set(files_in(server.folder)) - set(server.baseline))
        assert left == [], f"{case}: {left}"
    # refused by the upload route itself (over --max-file-mb): nothing stays either
    import httpx

    big = b"\x89PNG" + bytes(int(MAX_FILE_MB * 2**20) + 10)
    response = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.png", big)}, timeout=60)
    assert response.status_code == 413
    assert files_in(server.folder) == server.baseline
    check(call(client, images(2)), 2)


def test_request_beyond_the_budget_is_refused(server, client):
    """Nothing left to evict and still too much: the upload is refused at once (HTTP 413, before a byte of it is
    stored), nothing is left behind, the server keeps serving."""
    store = server.store
    budget = store.budget_bytes
    store.budget_bytes = disk(server.folder) + 2**18  # 256 KB free; the demo images take 470 to 520 KB each
    try:
        with pytest.raises(Exception, match="413"):
            call(client, images(3))
        assert files_in(server.folder) == server.baseline
    finally:
        store.budget_bytes = budget
    check(call(client, images(3)), 3)


def test_uploads_left_unused_expire(server):
    """Uploaded but never submitted (or refused by a full queue), or cut off midway (Gradio keeps the part it
    received as ``tmp…``): gone after ``upload_ttl_s`` (3 s here)."""
    import socket

    import httpx

    response = httpx.post(server.url + "gradio_api/upload",
                          files={"files": ("a.png", DEMO_IMAGES[1].read_bytes())}, timeout=30)
    assert response.status_code == 200 and Path(response.json()[0]).is_file()
    host, port = server.url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port))) as cut:
        part = (b'--XX\r\nContent-Disposition: form-data; name="files"; filename="b.png"\r\n\r\n'
                + os.urandom(2 * 2**20))
        cut.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                    b"boundary=XX\r\nContent-Length: 9000000\r\n\r\n" + part)
        assert wait_for(lambda: any(name.startswith("tmp") for name in files_in(server.folder)), 10)
    assert back_to_baseline(server, timeout=10)


# ------------------------------------------------------------------------------------ sessions (handlers)
class FakeGradio:
    """What the result store reads from a Gradio app: its folder, the files it recorded, the example files."""

    def __init__(self, folder: Path) -> None:
        self.GRADIO_CACHE = str(folder)
        self.uploaded: set[str] = set()
        self.temp_file_sets = [self.uploaded]
        self.blocks = {0: SimpleNamespace(keep_in_cache=set())}

    def upload(self, src: Path, name: str | None = None) -> Path:
        data = src.read_bytes()
        path = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest() / (name or src.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.uploaded.add(str(path))
        return path


@pytest.fixture
def session_handlers(tmp_path):
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    folder = tmp_path / "gradio"
    folder.mkdir()
    fake = FakeGradio(folder)
    model = CountingModel(tiny_model())
    cfg = WebConfig(work_root=folder / "mum-web", long_side=112, max_sessions=2, max_files=MAX_FILES)
    h = Handlers(cfg, ModelCache("cpu", model="tiny", loader=lambda *a, **k: model, presets=["tiny"]))
    h.store.attach(fake)
    return h, fake


def run(h, files, session: str, old=None):
    """The page's "Reconstruct" (fast preview) in browser session ``session``; returns the scene."""
    out = h.run([str(p) for p in files], None, 1, None, True, 50, True, False, "depth", old,
                progress=lambda *a, **k: None, request=SimpleNamespace(session_hash=session))
    return out[-1]


def test_sessions_evicted_replaced_or_closed_lose_their_files(session_handlers):
    import gradio as gr

    h, fake = session_handlers
    uploads = {s: [fake.upload(p) for p in DEMO_IMAGES[i:i + 2]] for i, s in enumerate("abc")}
    scenes = {s: run(h, uploads[s], s) for s in "ab"}
    assert all(s.workdir.is_dir() for s in scenes.values()) and all(p.is_file() for p in uploads["a"])
    h.rerender(scenes["a"], 0, None, True, False, "depth")  # "a" is now the most recently used
    scenes["c"] = run(h, uploads["c"], "c")  # a third session with --max-sessions 2: "b" goes
    assert not scenes["b"].workdir.exists() and scenes["b"].closed
    assert scenes["a"].workdir.is_dir() and scenes["c"].workdir.is_dir()
    # b's uploads are a's and c's too (Gradio names an upload by its content): they stay
    assert all(p.is_file() for p in uploads["a"] + uploads["c"])
    with pytest.raises(gr.Error, match="removed"):
        h.rerender(scenes["b"], 0, None, True, False, "depth")
    # a session that runs again: its previous result and the uploads nobody holds any more go
    again = [fake.upload(p) for p in DEMO_IMAGES[5:7]]
    new_c = run(h, again, "c", old=scenes["c"])
    assert not scenes["c"].workdir.exists() and new_c.workdir.is_dir()
    assert not any(p.exists() for p in uploads["c"])
    # a closed page
    h.session_closed(SimpleNamespace(session_hash="a"))
    assert not scenes["a"].workdir.exists() and not any(p.exists() for p in uploads["a"])
    assert new_c.workdir.is_dir() and all(p.is_file() for p in again)
    assert h.store.stats()["sessions"] == 1


def test_refused_page_submission_keeps_the_good_files(session_handlers, tmp_path):
    """In the page the user corrects a refused selection without uploading again: the unusable file goes at
    once, the others stay with the session until it runs again."""
    import gradio as gr

    h, fake = session_handlers
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = [fake.upload(p) for p in DEMO_IMAGES[:2]]
    broken = fake.upload(bad)
    with pytest.raises(gr.Error, match="broken.jpg"):
        run(h, [*good, broken], "d")
    assert not broken.exists() and all(p.is_file() for p in good)
    scene = run(h, good, "d")  # the same uploads, without the broken one
    assert scene.workdir.is_dir() and all(p.is_file() for p in good)
    too_many = [fake.upload(p) for p in DEMO_IMAGES[:MAX_FILES + 1]]
    with pytest.raises(gr.Error, match="too many files"):
        run(h, too_many, "d", old=scene)
    assert scene.workdir.is_dir()  # the page still shows it
    h.session_closed(SimpleNamespace(session_hash="d"))
    assert not any(p.exists() for p in too_many) and not scene.workdir.exists()


def test_only_the_servers_own_files_are_deleted(session_handlers, tmp_path):
    """A user's file, a file in Gradio's folder that this server did not record, an example scene's file:
    none is deleted, whatever a request names."""
    h, fake = session_handlers
    user_file = tmp_path / "mine.png"
    shutil.copy(DEMO_IMAGES[0], user_file)
    foreign = Path(fake.GRADIO_CACHE) / ("f" * 64) / "other-app.png"
    foreign.parent.mkdir()
    shutil.copy(DEMO_IMAGES[1], foreign)
    example = fake.upload(DEMO_IMAGES[2], "example.png")  # recorded by Gradio, but kept for the app's lifetime
    fake.blocks[0].keep_in_cache.add(str(example))
    kept = [user_file, foreign, example, DEMO_IMAGES[3]]
    scene = run(h, kept, "e")
    h.store.close_session("session-e")
    assert scene.closed and all(p.is_file() for p in kept)
    with h.store.request(kept):
        pass
    h.store.budget_bytes = 0
    h.store.tick()
    assert all(p.is_file() for p in kept)


def test_an_upload_shared_by_two_requests_stays_until_both_ran(session_handlers):
    """Two clients upload the same image (one file, named by its content): the first request's end must not
    delete it while the second has not run; the second's end does."""
    h, fake = session_handlers
    shared = fake.upload(DEMO_IMAGES[4])
    h.store.uploaded([str(shared)] * 2)  # what the upload route reports, once per client
    with h.store.request([shared]):
        pass
    assert shared.is_file()
    with h.store.request([shared]):
        pass
    assert not shared.exists()
    assert h.store.stats()["pending_uploads"] == 0


def test_stopped_server_leaves_nothing(tmp_path):
    """``mum-web`` stopped with SIGTERM (``docker stop``) after serving a default-path request (pycolmap
    imported in a worker thread): one line, exit status 143, its folder ``<tmp>/mum-web-<port>`` (uploads,
    results, the example scenes' cache) is gone."""
    import signal
    import subprocess
    import sys
    import tempfile

    from web_support import REPO, free_port, wait_http

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.web.server", "--port", str(port), "--model", "mum-tiny", "--size", "112", "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    folder = Path(tempfile.gettempdir()) / f"mum-web-{port}"
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "downloads"))
        check(call(client, images(2)), 2)
        assert folder.is_dir()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert proc.stderr.read().strip().splitlines()[-1:] == ["error: interrupted (SIGTERM)"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not folder.exists()


# ------------------------------------------------------------------------------------------------ soak
def test_soak_disk_and_memory_stay_bounded(server, client, tmp_path):
    """A fixed load on 127.0.0.1 within a time limit: 16 sequential requests (every fourth one garbage), then 3
    rounds of 4 concurrent requests with the same images (one garbage each). Every good request gets its result,
    every garbage one its message; the server's files stay under SOAK_DISK_MB, memory grows less than
    SOAK_RSS_GROWTH_MB, the folder is as it was afterwards, and the server still answers."""
    start = time.monotonic()
    garbage = [files for files, _ in _garbage(tmp_path).values()]
    check(call(client, images(2)), 2)  # warm-up
    rss0 = rss_mb()
    peak = {"disk": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["disk"] = max(peak["disk"], disk(server.folder) - sum(server.baseline.values()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    good = bad = 0
    try:
        for i in range(16):
            if i % 4 == 3:
                with pytest.raises(Exception):  # noqa: B017 - every kind of garbage, each with its own message
                    call(client, garbage[(i // 4) % len(garbage)])
                bad += 1
            else:
                check(call(client, images(2 + i % 3)), 2 + i % 3)
                good += 1
        for round_ in range(3):
            jobs = [(j, client.submit(garbage[round_ + 2] if j == 0 else images(3), True, api_name="/reconstruct"))
                    for j in range(4)]
            for j, job in jobs:
                if j == 0:
                    with pytest.raises(Exception):  # noqa: B017
                        job.result(timeout=SOAK_TIME_S)
                    bad += 1
                else:
                    check(job.result(timeout=SOAK_TIME_S), 3)
                    good += 1
            assert time.monotonic() - start < SOAK_TIME_S
    finally:
        stop.set()
        sampler.join()
    growth = rss_mb() - rss0
    check(call(client, images(2)), 2)  # still answering
    assert back_to_baseline(server), sorted(set(files_in(server.folder)) - set(server.baseline))
    elapsed = time.monotonic() - start
    print(f"soak: {good} good, {bad} refused, {elapsed:.1f} s, peak disk {peak['disk'] / 2**20:.1f} MB, "
          f"RSS {rss0:.0f} MB + {growth:.0f} MB")
    assert (good, bad) == (21, 7)
    assert peak["disk"] < SOAK_DISK_MB * 2**20
    assert growth < SOAK_RSS_GROWTH_MB
    assert elapsed < SOAK_TIME_S
