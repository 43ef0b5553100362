"""The web app in a real browser: headless Debian Chromium driven by Playwright uploads demo images, runs the
reconstruction, waits for the 3D view, the camera table and the downloads, checks the downloaded PLY and a
bad upload's message, and takes a screenshot.

Needs the Debian packages ``chromium`` (and ``chromium-driver``) and the ``playwright`` Python package; skips
otherwise. Set ``MUM_WEB_SCREENSHOT=path.png`` to also save the screenshot there (the README's picture)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from web_support import DEMO_IMAGES, SFM_VIEWS, CountingModel, start_server, tiny_model

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    tmp = tmp_path_factory.mktemp("browser")
    model = CountingModel(tiny_model())
    app, url, _ = start_server(model, tmp)
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1300}, accept_downloads=True,
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield page, tmp, model
        context.close()
    app.close()


def upload_and_run(page, files: list[Path]) -> None:
    page.locator("#uploads input[type=file]").set_input_files([str(f) for f in files])
    page.wait_for_function(
        f"document.querySelectorAll('#uploads table tr, #uploads .file').length >= {len(files)}", timeout=TIMEOUT_MS
    )
    page.locator("#run").click()


def test_browser_upload_run_inspect_download(browser_page):
    from playwright import sync_api
    from plyfile import PlyData

    page, tmp, model = browser_page
    # 5 TUM views far enough apart for SfM to register them; the README picture: 3 consecutive views, whose cloud
    # headless Chromium's software WebGL draws in the app (5 or more leave its 3D view blank there, while the
    # same scene.glb draws in a page of its own: a loading race in the viewer under software rendering)
    views = DEMO_IMAGES[:3] if os.environ.get("MUM_WEB_SCREENSHOT") else SFM_VIEWS
    upload_and_run(page, views)
    # the camera table lists every image, the 3D view has a canvas, the downloads are offered
    page.locator("#downloads a[download='scene.ply']").wait_for()
    page.get_by_role("tab", name="Cameras").click()
    for image in views:
        sync_api.expect(page.locator("#cameras")).to_contain_text(image.name, timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#cameras")).to_contain_text(re.compile(r"\bsfm\b"))  # camera sources
    # the default path with SfM's cameras: not the fall-back "0/N cameras from SfM (cameras from the network)"
    status = page.locator("#status").inner_text()
    registered = re.search(r"\b(\d+)/(\d+) cameras from SfM", status)
    assert registered and int(registered.group(2)) == len(views), status
    assert int(registered.group(1)) >= len(views) - 1 and "cameras from the network" not in status, status
    assert "reprojection error" in status and "warning" not in status.lower(), status
    page.locator("#viewer canvas").first.wait_for(state="visible")
    ply_link = page.locator("#downloads a[download='scene.ply']")
    for name in ("scene.glb", "cameras.json", "transforms.json", "colmap_sparse.zip"):
        page.locator(f"#downloads a[download='{name}']").wait_for()
    status = page.locator("#status").inner_text()
    shown = int(re.search(r"([\d,]+) points", status).group(1).replace(",", ""))
    with page.expect_download() as download:
        ply_link.click()
    ply = tmp / "downloaded.ply"
    download.value.save_as(ply)
    assert PlyData.read(str(ply))["vertex"].count == shown > 0
    assert model.calls == 1
    page.get_by_role("tab", name="Depth and confidence").click()
    page.wait_for_timeout(10_000 if os.environ.get("MUM_WEB_SCREENSHOT") else 1500)  # let WebGL draw the point cloud
    shot = tmp / "web_app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("MUM_WEB_SCREENSHOT"):
        shutil.copy(shot, os.environ["MUM_WEB_SCREENSHOT"])


def test_browser_filter_rerenders_without_the_model(browser_page):
    page, _, model = browser_page
    calls = model.calls
    before = page.locator("#status").inner_text()
    page.get_by_label("Mask background (near-black / near-white pixels)").check()
    page.wait_for_function(
        "prev => document.querySelector('#status').innerText !== prev", arg=before, timeout=TIMEOUT_MS
    )
    assert model.calls == calls


def test_browser_bad_upload_shows_message(browser_page):
    page, tmp, _ = browser_page
    bad = tmp / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    page.locator("#uploads button[aria-label='Clear']").first.click() if page.locator(
        "#uploads button[aria-label='Clear']"
    ).count() else None
    upload_and_run(page, [bad])
    page.get_by_text("broken.jpg: not a readable image").first.wait_for()


def test_browser_example_scene_runs(browser_page):
    from app.web.server import EXAMPLE_SCENES

    page, _, model = browser_page
    calls = model.calls
    label, n = EXAMPLE_SCENES["tum_freiburg"]
    page.get_by_text(f"{label}: {n} views").first.click()
    page.wait_for_function(f"document.querySelectorAll('#uploads table tr, #uploads .file').length >= {n}")
    page.locator("#run").click()
    sync_api = pytest.importorskip("playwright.sync_api")
    # the summary, not a progress line ("preprocessed N views ..."): the run must be over when the test ends
    summary = re.compile(rf"{n} views → [\d,]+ points")
    sync_api.expect(page.locator("#status")).to_contain_text(summary, timeout=TIMEOUT_MS)
    assert model.calls == calls + 1


def test_browser_fast_preview_moves_the_filter_and_skips_sfm(browser_page):
    """Ticking *Fast preview* sets the confidence filter to the fast path's 50; its run says so in the status."""
    page, _, model = browser_page
    calls = model.calls
    conf = page.locator("#conf input[type=number]")
    fast = page.get_by_label("Fast preview (network only)")
    assert not fast.is_checked()
    fast.check()
    page.wait_for_function("() => document.querySelector('#conf input[type=number]').value === '50'")
    page.locator("#run").click()
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect(page.locator("#status")).to_contain_text("fast preview: cameras from the network",
                                                             timeout=TIMEOUT_MS)
    assert model.calls == calls + 1
    fast.uncheck()
    page.wait_for_function("() => document.querySelector('#conf input[type=number]').value === '0'")
    assert conf.input_value() == "0"
