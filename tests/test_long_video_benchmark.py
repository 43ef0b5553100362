"""benchmarks/long_video.py's reading of a real sequence: the reference cameras in either layout the cameras
reader takes (the demo's ``cameras`` object, the project's ``images`` list), the frames in the order the command
line takes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.long_video import real_sequence
from mum.data.readers.common import load_cameras_file

TUM = Path(__file__).resolve().parents[1] / "demo" / "tum_freiburg"


def test_real_sequence_reads_both_reference_layouts_in_frame_order(tmp_path):
    images, names, gt = real_sequence(TUM)
    assert names == sorted(p.name for p in images.iterdir()) and len(names) == 17
    assert gt.shape == (17, 4, 4) and np.allclose(gt[:, 3], [0, 0, 0, 1])
    assert len({tuple(np.round(T[:3, 3], 6)) for T in gt}) == 17  # one camera per frame, not one repeated

    cams = load_cameras_file(TUM / "cameras_reference.json")
    listed = [{"name": n, "width": c["width"], "height": c["height"], "K": c["K"].tolist(),
               "cam_from_world": c["cam_from_world"].tolist()} for n, c in reversed(list(cams.items()))]
    (tmp_path / "cameras_reference.json").write_text(json.dumps({"images": listed}))
    _, names2, gt2 = real_sequence(tmp_path)
    assert names2 == names  # listed last frame first: still in frame order
    np.testing.assert_allclose(gt2, gt, atol=1e-12)


def test_cli_reports_each_stage_and_the_benchmark_counts_the_time_to_the_cameras(tmp_path, capsys):
    """``--json``'s ``stage_seconds``: wall and CPU seconds of the network, the cameras, the dense stage and the
    export, within the command's total; ``camera_seconds`` is the whole process's time less the dense stage
    and the export (what plain pycolmap's time is compared with)."""
    from app.cli import main
    from benchmarks.long_video import camera_seconds

    views = sorted((TUM / "images").iterdir())[:6:2]
    assert main([*map(str, views), "-o", str(tmp_path / "scene"), "--json", "--dense", "fitted"]) == 0
    summary = json.loads(capsys.readouterr().out)
    stages = summary["stage_seconds"]
    assert set(stages) == {"wall", "cpu"}
    assert all(set(stages[kind]) == {"network", "cameras", "dense", "export"} for kind in stages)
    assert summary["cameras"]["sfm"] == 3 and stages["wall"]["cameras"] > 0.1  # SfM ran, and was timed
    assert all(v >= 0 for kind in stages for v in stages[kind].values())
    assert sum(stages["wall"].values()) <= summary["total_s"]
    wall, cpu = 100.0, 50.0
    to_cameras = camera_seconds(wall, cpu, stages)
    assert to_cameras["camera_seconds"] == round(wall - stages["wall"]["dense"] - stages["wall"]["export"], 1)
    assert to_cameras["camera_cpu_seconds"] == round(cpu - stages["cpu"]["dense"] - stages["cpu"]["export"], 1)
    assert camera_seconds(wall, cpu, None) == {}
