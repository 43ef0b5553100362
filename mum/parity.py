"""Check the MuM implementation against parity vectors made by the official code.

Usage: ``python -m mum.parity FILE.npz [FILE.npz ...]`` with each ``FILE.json`` beside its ``.npz``
(constructor arguments). Prints ``name max_abs_diff`` per output and exits 1 if any exceeds the tolerance.
The test suite calls :func:`check_parity_file`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .autoencoder import build_autoencoder
from .config import AutoEncoderConfig, EncoderConfig
from .encoder import build_encoder
from .errors import OneLineArgumentParser

TOLERANCE = 1e-5


def _encoder_config(spec: dict) -> EncoderConfig:
    return EncoderConfig(
        patch_size=spec["patch_size"],
        embed_dim=spec["embed_dim"],
        depth=spec["depth"],
        num_heads=spec["num_heads"],
        mlp_ratio=spec.get("mlp_ratio", 4.0),
        norm_eps=spec["norm_eps"],
        rope_dtype=spec.get("rope_dtype", "float32"),
    )


def _strip_state(data: np.lib.npyio.NpzFile) -> dict[str, torch.Tensor]:
    return {k[len("state.") :]: torch.from_numpy(data[k]) for k in data.files if k.startswith("state.")}


def pair_outputs(name: str, data, ours: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{output: (ours, reference)}`` for every ``output.*`` array of a reference file ``data``; a reference
    output the implementation did not produce is an error."""
    result = {}
    for key in data.files:
        if key.startswith("output."):
            out = key[len("output.") :]
            if out not in ours:
                raise KeyError(f"{name}: no implementation output for {out!r}")
            value = ours[out]
            if isinstance(value, torch.Tensor):
                value = value.detach()
                mine = (value.float() if value.dtype in (torch.bfloat16, torch.float16) else value).numpy()
            else:
                mine = np.asarray(value)
            result[out] = (mine, data[key])
    return result


def compute_outputs(npz_path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{output name: (ours, reference)}`` for one vector file (encoder or autoencoder)."""
    npz_path = Path(npz_path)
    spec = json.loads(npz_path.with_suffix(".json").read_text())
    data = np.load(npz_path)
    state = _strip_state(data)
    enc_cfg = _encoder_config(spec)
    ours: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        if "decoder_embed_dim" in spec:
            cfg = AutoEncoderConfig(
                encoder=enc_cfg,
                decoder_embed_dim=spec["decoder_embed_dim"],
                decoder_depth=spec["decoder_depth"],
                decoder_num_heads=spec["decoder_num_heads"],
                mask_ratio=spec.get("mask_ratio", 0.75),
                norm_pix_loss=spec.get("norm_pix_loss", True),
            )
            model = build_autoencoder(cfg).eval()
            model.load_state_dict(state, strict=True)
            images = torch.from_numpy(data["input.images"])
            out = model(images, ids_restore=torch.from_numpy(data["input.ids_restore"]))
            ours.update(latent=out.latent, pred=out.pred, loss=out.loss, mask=out.mask)
            flat = images.flatten(0, 1)
            feats = model.forward_features(flat)
            ours.update(x_norm_patchtokens=feats["x_norm_patchtokens"], x_norm_cls_token=feats["x_norm_cls_token"])
            n_inter = sum(1 for k in data.files if k.startswith("output.intermediate_"))
            for i, t in enumerate(model.get_intermediate_layers(flat, n=n_inter), start=1):
                ours[f"intermediate_{i}"] = t
        else:
            model = build_encoder(enc_cfg).eval()
            model.load_state_dict(state, strict=True)
            ours.update(model.forward_features(torch.from_numpy(data["input.images"])))
    result = pair_outputs(Path(npz_path).name, data, ours)
    if "input.mask" in data.files:  # the masking we rebuilt from ids_restore must be the one that was drawn
        result["input_mask"] = (ours["mask"].numpy(), data["input.mask"])
    return result


def max_abs_diffs(outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """``{name: max |ours − reference|}`` for ``{name: (ours, reference)}`` (shape mismatches raise ``ValueError``)."""
    diffs = {}
    for name, (ours, ref) in outputs.items():
        if ours.shape != ref.shape:
            raise ValueError(f"{name}: shape {ours.shape} differs from reference {ref.shape}")
        diffs[name] = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    return diffs


def check_parity_file(npz_path: str | Path) -> dict[str, float]:
    """``{output name: max abs diff}`` for one vector file."""
    return max_abs_diffs(compute_outputs(npz_path))


def parity_main(
    check: Callable[[Path], dict[str, float]], argv: list[str] | None, prog: str, description: str
) -> int:
    """The parity command shared by ``mum.parity`` and ``heads.parity``: one ``name max_abs_diff`` line per
    output (a ``# FILE`` header when several files are given); exit status 1 if any exceeds ``--tol``."""
    parser = OneLineArgumentParser(prog=prog, description=description)
    parser.add_argument("files", nargs="+", type=Path, help="parity .npz files (with .json beside them)")
    parser.add_argument("--tol", type=float, default=TOLERANCE, help="max abs diff allowed (default 1e-5)")
    args = parser.parse_args(argv)
    ok = True
    for f in args.files:
        if not f.is_file() or not f.with_suffix(".json").is_file():
            print(f"{f}: missing .npz or its .json", file=sys.stderr)
            ok = False
            continue
        if len(args.files) > 1:
            print(f"# {f}")
        try:
            diffs = check(f)
        except (KeyError, ValueError, RuntimeError) as exc:
            print(f"{f}: {str(exc).splitlines()[0]}", file=sys.stderr)
            ok = False
            continue
        for name, diff in diffs.items():
            flag = "" if diff <= args.tol else "  FAIL"
            ok &= diff <= args.tol
            print(f"{name} {diff:.3e}{flag}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return parity_main(check_parity_file, argv, "python -m mum.parity", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
