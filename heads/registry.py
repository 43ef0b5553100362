"""Model registry: preset configs, :func:`list_models`, :func:`load_model`, :func:`save_model`.

``load_model(name_or_path, weights=None, device=None)``:

* a preset name (``list_models()``) with ``weights=None`` → random initialisation (benchmarks, tests);
* a preset name with ``weights`` → the file is recognised by its keys: an official MuM ``.pth`` (encoder, or
  the encoder part of an autoencoder) loads into ``encoder.*`` of a MuM preset; an official VGGT checkpoint
  loads into ``vggt-1b`` (``track_head.*`` dropped); a project safetensors file loads strictly;
* a path to a project safetensors file that records its own config (:func:`save_model`), or to an official
  VGGT checkpoint (built as ``vggt-1b``).

Every weights problem raises :class:`mum.errors.CheckpointError` (one line naming the file).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from mum.checkpoint import check_model_fits_file, load_into, load_state_dict, read_config, save_safetensors
from mum.config import ENCODER_PRESETS
from mum.errors import CheckpointError, UserError

from .config import AggregatorConfig, CameraHeadConfig, DPTConfig, ReconstructorConfig
from .model import Reconstructor, build_reconstructor
from .vggt import is_vggt_state, load_vggt_weights, vggt_1b_config

CHECKPOINT_KIND = "reconstructor"

PRESETS: dict[str, ReconstructorConfig] = {
    # The paper's downstream model (frozen-encoder protocol): MuM ViT-L/16, projection 1024 → 768.
    "mum-vitl16": ReconstructorConfig(
        name="mum-vitl16",
        image_size=480,
        patch_size=16,
        encoder=ENCODER_PRESETS["vitl16"],
        aggregator=AggregatorConfig(embed_dim=768, depth=6, num_heads=16, num_register_tokens=4, init_values=0.01),
        camera_head=CameraHeadConfig(trunk_depth=4, num_heads=16),
        dpt=DPTConfig(features=256, out_channels=(256, 512, 1024, 1024), intermediate_layer_idx=(2, 3, 4, 5)),
    ),
    # Laptop-CPU model: MuM ViT-S/16 encoder and a proportionally smaller aggregator and heads.
    "mum-small": ReconstructorConfig(
        name="mum-small",
        image_size=448,
        patch_size=16,
        encoder=ENCODER_PRESETS["vits16"],
        aggregator=AggregatorConfig(embed_dim=384, depth=4, num_heads=6, num_register_tokens=4, init_values=0.01),
        camera_head=CameraHeadConfig(trunk_depth=2, num_heads=8),
        dpt=DPTConfig(features=64, out_channels=(48, 96, 192, 384), intermediate_layer_idx=(0, 1, 2, 3)),
    ),
    # The bundled default's architecture; tests and quick CPU runs. Layer-scale starts at 1.0, not VGGT's 0.01:
    # under Adam a branch scaled by 0.01 changes its output 100× more slowly, which a few thousand CPU steps
    # cannot afford (at 0.01 the gammas stayed ≈ 0.01 over 1600 distillation steps and poses plateaued).
    "mum-tiny": ReconstructorConfig(
        name="mum-tiny",
        image_size=224,
        patch_size=16,
        encoder=ENCODER_PRESETS["tiny"],
        aggregator=AggregatorConfig(embed_dim=128, depth=4, num_heads=4, num_register_tokens=4, init_values=1.0),
        camera_head=CameraHeadConfig(trunk_depth=1, num_heads=4, init_values=1.0),
        dpt=DPTConfig(features=16, out_channels=(16, 32, 64, 64), intermediate_layer_idx=(0, 1, 2, 3)),
    ),
    # The distillation teacher; loads official VGGT-1B weights.
    "vggt-1b": vggt_1b_config(),
}

# Trained weights shipped inside the package (see MODEL_CARD.md); loaded by name, no download needed.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
BUNDLED: dict[str, Path] = {"mum-default": WEIGHTS_DIR / "mum-tiny.safetensors"}
DEFAULT_MODEL = "mum-default"


def list_models() -> list[str]:
    """Names :func:`load_model` accepts: bundled trained models, then presets (random weights unless given)."""
    return [*BUNDLED, *PRESETS]


def _bundled_path(name: str) -> Path:
    path = BUNDLED[name]
    if not path.is_file():
        raise CheckpointError(path, f"the bundled weights of {name!r} are missing: reinstall the package, or use --model/--weights")
    return path


def model_config(name: str) -> ReconstructorConfig:
    """The config of the preset or bundled model ``name``."""
    if name in BUNDLED:
        path = _bundled_path(name)
        return _recorded_config(path, read_config(path)[1])
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())} or give a checkpoint path") from None


def save_model(model: Reconstructor, path: str | os.PathLike) -> Path:
    """Write ``model`` as project safetensors recording its config (loadable by ``load_model(path)``)."""
    return save_safetensors(model, path, kind=CHECKPOINT_KIND, config=model.cfg.to_dict())


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    name_or_path: str | os.PathLike,
    weights: Optional[str | os.PathLike] = None,
    device: Optional[str | torch.device] = None,
) -> Reconstructor:
    """A :class:`Reconstructor` in eval mode on ``device`` (default: CUDA when available, else CPU).

    ``name_or_path``: a preset name or a checkpoint path; ``weights``: an optional weights file for a preset
    (see the module docstring for the accepted formats). A preset without ``weights`` gets the same random
    weights on every call (seed 0)."""
    device = device or _default_device()
    name = str(name_or_path)
    if name in BUNDLED:
        model = _load_checkpoint(_bundled_path(name))
        model.name = name  # shown to users as the name they asked for (the architecture stays in model.cfg.name)
        if weights is not None:
            load_weights(model, weights)
    elif name in PRESETS:
        with torch.random.fork_rng(devices=[]):  # random weights: the same on every run, the caller's RNG untouched
            torch.manual_seed(0)
            model = build_reconstructor(PRESETS[name])
        if weights is not None:
            load_weights(model, weights)
    else:
        if weights is not None:
            raise ValueError(f"weights= is only for preset names; {name!r} is not one of {', '.join(PRESETS)}")
        model = _load_checkpoint(name)
    return model.to(device).eval()


def _load_checkpoint(path: str | os.PathLike) -> Reconstructor:
    """A model from a file alone: project safetensors with a recorded config, or an official VGGT checkpoint."""
    if not Path(path).exists():
        raise CheckpointError(path, f"file not found (and not a model name: {', '.join(list_models())})")
    kind, cfg = read_config(path)
    if cfg is not None:
        if kind != CHECKPOINT_KIND:
            raise CheckpointError(path, f"holds a {kind!r} model, not a reconstructor")
        config = _recorded_config(path, cfg)
        what = f"reconstructor {config.name}"
        check_model_fits_file(lambda device: build_reconstructor(config, device), path, what)  # before any memory is taken
        return load_into(build_reconstructor(config), path, what=what)
    state = load_state_dict(path)
    if is_vggt_state(state):
        return load_vggt_weights(build_reconstructor(vggt_1b_config()), path, state)
    raise CheckpointError(path, "records no model config; give a preset name with weights= instead")


def _recorded_config(path: str | os.PathLike, cfg: dict) -> ReconstructorConfig:
    """The reconstructor config a safetensors file records, every field checked (one line naming the file)."""
    try:
        return ReconstructorConfig.from_dict(cfg, where="mum.config")
    except UserError as exc:
        raise CheckpointError(path, f"has an unusable config ({exc})") from None


def load_weights(model: Reconstructor, path: str | os.PathLike) -> Reconstructor:
    """Load a weights file into a built ``model``, recognising the format by its keys (strict in each case)."""
    kind, cfg = read_config(path)
    if cfg is not None and kind == CHECKPOINT_KIND:
        return load_into(model, path, what=f"reconstructor {model.name}")
    state = load_state_dict(path)
    if is_vggt_state(state):
        return load_vggt_weights(model, path, state)
    if model.encoder is not None and "cls_token" in state:  # official MuM encoder or autoencoder release
        if "decoder_embed.weight" in state:  # autoencoder: keep its encoder part (strict on those keys)
            state = {k: state[k] for k in model.encoder.state_dict() if k in state}
        load_into(model.encoder, path, state, what=f"MuM encoder of {model.name}")
        return model
    return load_into(model, path, state, what=f"reconstructor {model.name}")
