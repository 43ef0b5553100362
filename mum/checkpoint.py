"""The project's one checkpoint loader and saver.

* Official releases (``.pth``/``.pt``) load with ``torch.load(weights_only=True)``; a wrapping dict under
  ``model``/``state_dict``/``model_state_dict`` is unwrapped.
* The project's own weights are safetensors with the model config recorded in the metadata
  (``mum.kind``, ``mum.config`` as JSON).
* Every problem a user can cause (missing, unreadable, truncated, not a checkpoint, another architecture)
  raises :class:`~mum.errors.CheckpointError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from .errors import CheckpointError
from .files import atomic_path

SAFETENSORS_SUFFIXES = (".safetensors",)
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


def _preview(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file (empty for other formats)."""
    path = Path(path)
    if path.suffix not in SAFETENSORS_SUFFIXES:
        return {}
    from safetensors import safe_open

    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(path, f"not a readable safetensors file ({_reason(exc)})") from None


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(path, "file not found")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, expected a weights file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def load_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a weights file (safetensors or official ``.pth``) into a flat ``{key: tensor}`` on the CPU."""
    path = Path(path)
    _check_exists(path)
    if path.suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(path, f"not a readable safetensors file, truncated or corrupt ({_reason(exc)})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise CheckpointError(path, f"not a readable PyTorch checkpoint, truncated or corrupt ({_reason(exc)})") from None
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # pickled objects besides tensors
            raise CheckpointError(path, "refused to load: it holds pickled Python objects besides tensors, and "
                                        "loading those could run code; only plain weights files are accepted") from None
        raise CheckpointError(path, "not a readable PyTorch checkpoint, truncated or corrupt") from None
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(path, f"not a PyTorch checkpoint ({type(exc).__name__}: {_reason(exc)})") from None
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(path, "does not contain a state dict of tensors")
    return dict(obj)


def check_compatible(model: nn.Module, state: Mapping[str, Tensor], path: str | os.PathLike, what: str = "model") -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly ``model``'s keys and shapes."""
    expected = model.state_dict()
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_preview(unexpected)})")
        raise CheckpointError(path, f"wrong architecture for {what}: " + "; ".join(parts))
    bad = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            path,
            f"wrong architecture for {what}: {len(bad)} tensors of another shape, e.g. {k} "
            f"{tuple(state[k].shape)} vs expected {tuple(expected[k].shape)}",
        )


def load_into(model: nn.Module, path: str | os.PathLike, state: Optional[Mapping[str, Tensor]] = None, what: str = "model") -> nn.Module:
    """Strictly load the weights file ``path`` (or an already read ``state``) into ``model``."""
    state = load_state_dict(path) if state is None else state
    check_compatible(model, state, path, what)
    model.load_state_dict(state, strict=True)
    return model


def save_safetensors(
    model_or_state: nn.Module | Mapping[str, Tensor], path: str | os.PathLike, kind: str, config: Any
) -> Path:
    """Write weights as safetensors with ``{"mum.kind": kind, "mum.config": json(config)}`` metadata.

    The file is written to a temporary name then renamed, so a crash never leaves a half-written file."""
    from safetensors.torch import save_file

    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"mum.kind": kind, "mum.config": json.dumps(config)})
    return path


def read_config(path: str | os.PathLike) -> tuple[Optional[str], Optional[dict[str, Any]]]:
    """``(kind, config dict)`` recorded in a project safetensors file, or ``(None, None)``."""
    meta = read_metadata(path)
    if "mum.config" not in meta:
        return None, None
    try:
        return meta.get("mum.kind"), json.loads(meta["mum.config"])
    except json.JSONDecodeError:
        raise CheckpointError(path, "has a corrupt mum.config metadata entry") from None
