"""The default path with the bundled model on every demo scene, against the scenes' reference cameras, with the
figures of the benchmark (``benchmarks/real_scenes.py``, ``benchmarks/results/real_scenes_cpu.json``) as the
bar, less a margin; and the web app on its example scenes with the bundled model.

demo/buddha is the scene whose first mapping leaves views unregistered (plain SfM registers 11 of 13): it runs
the guided re-matching and the relaxed mapping of ``app/engine/sfm.py`` on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import heads
from app.engine.pipeline import reconstruct_arrays
from app.engine.options import CameraOptions, PipelineOptions
from heads.metrics import pose_auc, relative_pose_errors
from mum.data.readers import read_scene
from mum.io import load_views

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "benchmarks" / "results" / "real_scenes_cpu.json"
AUC_MARGIN = 5.0  # AUC@30 points below the benchmark's figure that still pass (the benchmark is one run)


@pytest.fixture(scope="module")
def bundled():
    return heads.load_model(heads.DEFAULT_MODEL, device="cpu")


def auc30(cam_from_world: np.ndarray, reference: np.ndarray) -> float:
    rra, rta = relative_pose_errors(torch.from_numpy(cam_from_world[:, :3, :4]), torch.from_numpy(reference[:, :3, :4]))
    return 100 * float(pose_auc(rra, rta, 30))


def benchmark_row(scene: str) -> dict:
    return json.loads(BENCHMARK.read_text())["scenes"][f"demo/{scene}"]["default"]


@pytest.mark.parametrize("scene", ["tum_freiburg", "sacre_coeur", "buddha"])
def test_default_path_on_demo_scene(bundled, scene):
    ref = read_scene(ROOT / "demo" / scene)
    names, arrays = load_views([str(ROOT / "demo" / scene / "images" / n) for n in ref.names])
    warnings: list[str] = []
    options = PipelineOptions(cameras=CameraOptions(native_log="/dev/null"))
    recon = reconstruct_arrays(bundled, names, arrays, options=options, warn=warnings.append)
    bar = benchmark_row(scene)
    registered = recon.pose_origins().count("sfm")
    assert warnings == []
    assert registered == recon.meta["sfm"]["registered_views"] >= bar["registered"]
    score = auc30(recon.cam_from_world, ref.extrinsics)
    assert score >= bar["auc30"] - AUC_MARGIN, (score, bar["auc30"])
    consistency = recon.meta["consistency"]  # both disagreement figures are reported, the cloud's the lower
    assert consistency["cloud_median_depth_disagreement"] < consistency["median_depth_disagreement"] < 0.5
    if scene == "buddha":
        sfm = recon.meta["sfm"]
        assert "guided_matching" in sfm["seconds"] and sfm["relaxed_mapping"] is True, sfm
        assert registered == len(names)  # the relaxed pass registers the views plain SfM leaves out


@pytest.mark.parametrize("scene", ["tum_freiburg", "sacre_coeur", "buddha", "synthetic_room"])
def test_web_app_example_scene_with_the_bundled_model(tmp_path, bundled, scene):
    """An example scene of the page (the views ``gr.Examples`` offers) through the web app's handler with the
    bundled model at its own input size: SfM cameras for every view, and the downloaded cameras.json agrees
    with the scene's reference cameras far better than the network alone (3–4 views: SfM on so few is less
    precise than on the whole scene; the Sacré-Cœur example scores AUC@30 59, the others above 90). The TUM
    example used to offer 4 frames 4 apart, of which SfM registered 3 (the 4th placed by the network: AUC@30 48);
    it offers 6 frames 2 apart now."""
    from web_support import CountingModel

    from app.engine.reconstruction import default_conf_percentile
    from app.web.server import example_scenes
    from app.web.handlers import Handlers, WebConfig
    from app.web.model_cache import ModelCache

    rows, labels = example_scenes()
    files = next(row[0] for row in rows if Path(row[0][0]).parts[-3] == scene)
    model = CountingModel(bundled)
    models = ModelCache("cpu", model=heads.DEFAULT_MODEL, loader=lambda *a, **k: model, presets=[heads.DEFAULT_MODEL])
    h = Handlers(WebConfig(work_root=tmp_path), models)
    glb, _gallery, table, downloads, _frames, status, state = h.run(
        files, None, 1, None, False, default_conf_percentile(False), True, False, "depth", None,
        progress=lambda fraction, desc=None: None)
    n = len(files)
    assert model.calls == 1 and max(state.recon.meta["network_size"]) == bundled.cfg.image_size == 128
    assert f"**{n}/{n} cameras from SfM**" in status and list(table["source"]) == ["sfm"] * n, status
    cams = json.loads(Path(next(f for f in downloads if f.endswith("cameras.json"))).read_text())["images"]
    ref = read_scene(ROOT / "demo" / scene)
    order = [ref.names.index(Path(c["name"]).name) for c in cams]
    estimated = np.stack([np.array(c["cam_from_world"], dtype=np.float64) for c in cams])
    score = auc30(estimated, ref.extrinsics[order])
    assert score > 50, (score, status)  # the network's own cameras: AUC@30 ≤ 10 on these scenes (MODEL_CARD.md)
