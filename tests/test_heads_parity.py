"""The heads reproduce the official VGGT outputs (reference vectors in tests/reference/vggt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from heads.parity import TOLERANCE, check_parity_file, main

from conftest import REFERENCE as REFERENCES

REFERENCE = REFERENCES / "vggt"
VECTORS = [
    "aggregator_small",
    "aggregator_dino_small",
    "dinov2_patch_embed_small",
    "camera_head",
    "dpt_point_head",
    "dpt_depth_head",
    "vggt_small",
    "geometry",
]


@pytest.fixture(scope="module")
def reference() -> Path:
    assert REFERENCE.is_dir(), f"VGGT reference vectors missing: {REFERENCE}"
    return REFERENCE


@pytest.mark.parametrize("name", VECTORS)
def test_reference_outputs_reproduced(reference, name):
    diffs = check_parity_file(reference / f"{name}.npz")
    expected = {k[len("output.") :] for k in np.load(reference / f"{name}.npz").files if k.startswith("output.")}
    assert diffs.keys() == expected
    for out, diff in diffs.items():
        assert diff < TOLERANCE, f"{name}.{out}: max abs diff {diff:.2e}"


def test_parity_command_prints_and_fails_on_a_perturbed_weight(reference, tmp_path, capsys):
    assert main([str(reference / "camera_head.npz")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == [f"pose_enc_iter{i}" for i in range(4)]
    assert all(float(ln.split()[1]) < TOLERANCE for ln in lines)

    data = dict(np.load(reference / "camera_head.npz"))
    data["state.pose_branch.fc2.bias"] = data["state.pose_branch.fc2.bias"] + 1e-3
    np.savez(tmp_path / "bad.npz", **data)
    shutil.copy(reference / "camera_head.json", tmp_path / "bad.json")
    assert main([str(tmp_path / "bad.npz")]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_parity_command_rejects_missing_json(tmp_path):
    np.savez(tmp_path / "lonely.npz", x=np.zeros(1))
    assert main([str(tmp_path / "lonely.npz")]) == 1
