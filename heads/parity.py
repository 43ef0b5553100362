"""Check the heads against parity vectors made by the official VGGT code.

Usage: ``python -m heads.parity FILE.npz [FILE.npz ...]``. Each ``FILE.json`` beside its ``.npz`` names the
official ``module`` and its ``kwargs`` (plus ``patch_embed_override`` / ``submodules``); the module is rebuilt
here, ``state.*`` is loaded strictly, ``input.*`` is fed in and every ``output.*`` compared. Prints
``name max_abs_diff`` per output and exits 1 if any exceeds the tolerance (``--tol``, default 1e-5 as the
vectors' README suggests). The tests call :func:`check_parity_file`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mum import geometry
from .aggregator import Aggregator
from .camera_head import CameraHead
from .dinov2 import DinoVisionTransformer
from .dpt import DPTHead
from .model import Reconstructor
from .vggt import config_from_official
from mum.parity import max_abs_diffs, pair_outputs, parity_main

TOLERANCE = 1e-5

Outputs = dict[str, Any]


def _strip(data: Any, prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: torch.from_numpy(np.asarray(data[k])) for k in data.files if k.startswith(prefix)}


def _token_list(inputs: dict[str, Tensor], prefix: str = "tokens_") -> list[Tensor]:
    count = int(inputs["num_token_layers"]) if "num_token_layers" in inputs else sum(k.startswith(prefix) for k in inputs)
    return [inputs[f"{prefix}{i}"] for i in range(count)]


def _load(module: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    module.load_state_dict(state, strict=True)
    return module.eval()


# --------------------------------------------------------------------------------------------- per module
def _run_aggregator(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    override = spec.get("patch_embed_override")
    kwargs = dict(spec["kwargs"])
    if override is not None:
        kwargs["patch_embed"] = DinoVisionTransformer(**override["kwargs"])
    model = _load(Aggregator(**kwargs), state)
    out: Outputs = {}
    for name, suffix in (("images", ""), ("images_b2", "b2_")):
        if name in inputs:
            tokens, patch_start_idx = model(inputs[name])
            out.update({f"tokens_{suffix}{i}": t for i, t in enumerate(tokens)})
            out["patch_start_idx"] = patch_start_idx
    return out


def _run_dinov2(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    model = _load(DinoVisionTransformer(**spec["kwargs"]), state)
    return model.forward_features(inputs["images"])


def _run_camera_head(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    model = _load(CameraHead(**spec["kwargs"]), state)
    encodings = model(_token_list(inputs), num_iterations=int(inputs["num_iterations"]))
    return {f"pose_enc_iter{i}": e for i, e in enumerate(encodings)}


def _run_dpt_head(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    model = _load(DPTHead(**spec["kwargs"]), state)
    tokens, images, start = _token_list(inputs), inputs["images"], int(inputs["patch_start_idx"])
    preds, conf = model(tokens, images, start, frames_chunk_size=8)
    preds2, conf2 = model(tokens, images, start, frames_chunk_size=2)
    return {"preds": preds, "conf": conf, "preds_chunk2": preds2, "conf_chunk2": conf2}


def _run_vggt(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    model = _load(Reconstructor(config_from_official(spec["submodules"], name=spec.get("name", "vggt"))), state)
    out: Outputs = {}
    raw = model(inputs["images"])
    out.update({k: raw[k] for k in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")})
    out.update({f"pose_enc_iter{i}": e for i, e in enumerate(raw["pose_enc_list"])})
    tokens, _ = model.aggregate(inputs["images"])
    out.update({f"aggregated_tokens_{i}": t for i, t in enumerate(tokens)})
    if "images_unbatched" in inputs:
        raw = model(inputs["images_unbatched"])
        out.update(pose_enc_unbatched=raw["pose_enc"], depth_unbatched=raw["depth"])
    return out


def _run_geometry(spec: dict, state: dict[str, Tensor], inputs: dict[str, Tensor]) -> Outputs:
    hw = tuple(int(v) for v in inputs["image_size_hw"])
    encoding = geometry.extrinsics_intrinsics_to_pose_encoding(inputs["extrinsics"], inputs["intrinsics"], hw)
    extr, intr = geometry.pose_encoding_to_extrinsics_intrinsics(encoding, hw)
    extr_raw, intr_raw = geometry.pose_encoding_to_extrinsics_intrinsics(inputs["raw_pose_encoding"], hw)
    depth, extrinsics, intrinsics = inputs["depth"], inputs["depth_extrinsics"], inputs["depth_intrinsics"]
    return {
        "pose_encoding": encoding,
        "extrinsics_from_encoding": extr,
        "intrinsics_from_encoding": intr,
        "extrinsics_from_raw_encoding": extr_raw,
        "intrinsics_from_raw_encoding": intr_raw,
        "quat_to_mat": geometry.quat_to_mat(inputs["quaternions_xyzw"]),
        "mat_to_quat": geometry.mat_to_quat(inputs["rotations"]),
        "world_points": geometry.depth_to_world_points(depth.double(), extrinsics.double(), intrinsics.double()),
        "cam_coords_frame0": geometry.depth_to_camera_points(depth[0], intrinsics[0]),
        "closed_form_inverse_se3": geometry.closed_form_inverse_se3(extrinsics),
    }


RUNNERS: dict[str, Callable[[dict, dict[str, Tensor], dict[str, Tensor]], Outputs]] = {
    "vggt.models.aggregator.Aggregator": _run_aggregator,
    "vggt.layers.vision_transformer.DinoVisionTransformer": _run_dinov2,
    "vggt.heads.camera_head.CameraHead": _run_camera_head,
    "vggt.heads.dpt_head.DPTHead": _run_dpt_head,
    "vggt.models.vggt.VGGT": _run_vggt,
    "vggt.utils (pose_enc, rotation, geometry)": _run_geometry,
}


# ------------------------------------------------------------------------------------------------- driver
def compute_outputs(npz_path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{output name: (ours, reference)}`` for one vector file."""
    npz_path = Path(npz_path)
    spec = json.loads(npz_path.with_suffix(".json").read_text())
    runner = RUNNERS.get(spec["module"])
    if runner is None:
        raise KeyError(f"{npz_path.name}: no implementation registered for module {spec['module']!r}")
    data = np.load(npz_path)
    with torch.no_grad():
        ours = runner(spec, _strip(data, "state."), _strip(data, "input."))
    return pair_outputs(npz_path.name, data, ours)


def check_parity_file(npz_path: str | Path) -> dict[str, float]:
    """``{output name: max abs diff}`` for one vector file (shape mismatches raise ``ValueError``)."""
    return max_abs_diffs(compute_outputs(npz_path))


def main(argv: list[str] | None = None) -> int:
    return parity_main(check_parity_file, argv, "python -m heads.parity", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
