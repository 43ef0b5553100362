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
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from .errors import CheckpointError, UserError
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
    _check_torch_format(path)
    try:
        with warnings.catch_warnings():  # torch's own (a pickle protocol it does not expect ...): our line says it
            warnings.simplefilter("ignore")
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # pickle protocol 2 + torch's magic


def _check_torch_format(path: Path) -> None:
    """Refuse a file that is not in one of ``torch.save``'s formats (a zip archive, or the legacy format that
    starts with torch's magic number) before ``torch.load`` unpickles anything: a raw pickle is not a
    checkpoint, and torch would print warnings about it first."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_LEGACY_MAGIC))
    except OSError as exc:
        raise CheckpointError(path, f"cannot read ({exc.strerror or exc})") from None
    if head.startswith(_ZIP_MAGIC) or head == _LEGACY_MAGIC:
        return
    if head[:1] == b"\x80":  # a pickle's protocol opcode
        raise CheckpointError(path, "a raw Python pickle, not a PyTorch checkpoint (torch.save) nor safetensors; "
                                    "refused without loading it")
    raise CheckpointError(path, "not a readable PyTorch checkpoint, truncated or corrupt (neither torch.save's "
                                "format nor safetensors)")


def read_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of the tensors in a safetensors file, from its header alone (nothing is read)."""
    from safetensors import safe_open

    path = Path(path)
    _check_exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(path, f"not a readable safetensors file ({_reason(exc)})") from None


MAX_PARAMETERS = 4_000_000_000  # a model this loader builds from a recorded config (VGGT-1B: 1.2e9)


def check_model_fits_file(build: Callable[[str], nn.Module], path: str | os.PathLike, what: str) -> None:
    """Before a model is built from a config recorded in the safetensors file ``path``: build it on the meta
    device (``build("meta")``: no memory), refuse more than :data:`MAX_PARAMETERS` parameters, and compare its keys and shapes with
    the file's header (:func:`read_shapes`). A config of 100,000 blocks in a file of a few hundred bytes is
    refused here in milliseconds instead of allocating gigabytes first."""
    try:
        model = build("meta")
    except (ValueError, TypeError, RuntimeError, AssertionError, ZeroDivisionError, OverflowError) as exc:
        raise CheckpointError(path, f"its config describes no buildable {what} ({_reason(exc)})") from None
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(path, f"its config describes a {what} of {count:,} parameters, more than this "
                                    f"loader builds ({MAX_PARAMETERS:,})")
    shapes = read_shapes(path)
    check_compatible(model, {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}, path, what)


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
    """``(kind, config dict)`` recorded in a project safetensors file, or ``(None, None)``. The config is JSON
    parsed with its nesting bounded (:func:`mum.schema.loads_json`); its fields are checked by the config's own
    ``from_dict`` before anything is built."""
    from .schema import loads_json

    meta = read_metadata(path)
    if "mum.config" not in meta:
        return None, None
    try:
        config = loads_json(meta["mum.config"], "mum.config")
    except UserError as exc:
        raise CheckpointError(path, f"has a corrupt {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(path, "has a corrupt mum.config: not a JSON object")
    return meta.get("mum.kind"), config
