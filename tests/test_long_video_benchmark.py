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
