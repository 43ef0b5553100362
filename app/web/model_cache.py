"""The web app's models: which ones a visitor may pick, each loaded once and shared by all sessions, within a
memory budget.

A preset without trained weights (``mum-vitl16``, ``vggt-1b``: random weights, for testing; some of them
gigabytes) is offered to visitors only when the operator allows it (``mum-web --allow-random-models``) or names
it as ``--model``; the bundled trained model and a ``--model``/``--weights`` file always are. Loaded models are
kept up to ``max_bytes`` of parameters and buffers: loading another evicts the least recently used ones first,
and a model larger than the whole budget is refused (its size known before it is built, from its config on
the meta device).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

Loader = Callable[..., Any]  # heads.load_model(name_or_path, weights=None, device=None)
Sizer = Callable[[str, "str | None"], "int | None"]  # bytes a model will take, None when not known in advance


def default_loader(name: str, weights: str | None = None, device: str | None = None) -> Any:
    import heads

    return heads.load_model(name, weights=weights, device=device)


def default_sizer(name: str, weights: str | None = None) -> int | None:
    """Bytes of parameters and buffers of the model ``name`` (a preset, the bundled model or a checkpoint that
    records its config), from its config built on the meta device; ``None`` when that cannot be known."""
    try:
        from heads.config import ReconstructorConfig
        from heads.model import build_reconstructor
        from heads.registry import list_models, model_config
        from mum.checkpoint import read_config

        if name in list_models():
            config = model_config(name)
        else:
            _, recorded = read_config(name)
            if recorded is None:
                return None
            config = ReconstructorConfig.from_dict(recorded)
        return model_bytes(build_reconstructor(config, device="meta"))
    except Exception:  # noqa: BLE001 - unknown in advance: measured once loaded
        return None


def model_bytes(model: Any) -> int:
    """Bytes of a model's parameters and buffers (0 for objects that are not ``torch.nn.Module``)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def registry_models() -> list[str]:
    """Model names from the registry (bundled trained models, then presets), empty if it is unavailable."""
    try:
        import heads

        return list(heads.list_models())
    except (ImportError, AttributeError):
        return []


def registry_random_presets() -> list[str]:
    """The registry's presets that have no trained weights of their own."""
    try:
        import heads

        return list(heads.PRESETS)
    except (ImportError, AttributeError):
        return []


def registry_default() -> str | None:
    try:
        import heads

        return heads.DEFAULT_MODEL
    except (ImportError, AttributeError):
        return None


class ModelCache:
    """Lazily loads each model choice (keyed by choice label), keeps the most recently used within
    ``max_bytes`` (``None``: no bound) and shares them between sessions.

    ``choices`` maps the label shown in the UI to ``(name_or_path, weights)`` for the loader. A ``--weights``
    file given on the command line becomes its own choice, labelled with the file name. ``random_presets``
    (default: the registry's presets) have random weights unless a weights file is given: they are offered only
    with ``allow_random`` or when named as ``model``."""

    def __init__(
        self,
        device: str,
        model: str | None = None,
        weights: str | None = None,
        loader: Loader = default_loader,
        presets: list[str] | None = None,
        compile_models: bool = False,
        *,
        allow_random: bool = False,
        random_presets: list[str] | None = None,
        max_bytes: int | None = None,
        sizer: Sizer | None = None,
    ) -> None:
        self.device = device
        self.loader = loader
        self.compile_models = compile_models  # torch.compile each model's blocks when it is loaded
        self.sizer = sizer if sizer is not None else (default_sizer if loader is default_loader else lambda *_: None)
        self.max_bytes = max_bytes
        self.choices: dict[str, tuple[str, str | None]] = {}
        presets = registry_models() if presets is None else presets
        self.random_presets = set(registry_random_presets() if random_presets is None else random_presets)
        model = model or registry_default() or (presets[0] if presets else None)
        if weights:
            base = model or "mum-vitl16"
            self.choices[f"{base} + {Path(weights).name}"] = (base, weights)
        elif model and model not in presets:
            if loader is default_loader and not Path(model).is_file():  # fail at start-up, not at the first request
                raise ValueError(f"--model {model}: neither a model name ({', '.join(presets)}) nor a checkpoint file")
            self.choices[model] = (model, None)  # a checkpoint path or an unlisted preset
        elif model:
            self.choices[model] = (model, None)  # the operator's choice, random weights or not
        for name in presets:
            if allow_random or name not in self.random_presets:
                self.choices.setdefault(name, (name, None))
        if not self.choices:
            raise ValueError("no model available: give --model")
        self.default = next(iter(self.choices))
        self._models: OrderedDict[str, tuple[Any, int]] = OrderedDict()  # label -> (model, bytes), LRU first
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was actually loaded (tests check it)
        self.evictions = 0

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def random_weights(self, label: str | None) -> bool:
        """Whether the choice ``label`` (default: the default) is a preset with random weights."""
        name, weights = self.choices.get(label or self.default, (None, None))
        return weights is None and name in self.random_presets

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._models.values())

    def get(self, label: str | None) -> Any:
        """The loaded model for ``label`` (the default for ``None``); loads it on first use, after evicting the
        least recently used others to keep ``max_bytes``."""
        from mum.errors import UserError

        label = label or self.default
        if label not in self.choices:
            raise UserError(f"unknown model {label!r}; choose one of: {', '.join(self.choices)}")
        with self._lock:
            if label in self._models:
                self._models.move_to_end(label)
                return self._models[label][0]
            name, weights = self.choices[label]
            expected = self.sizer(name, weights)
            if self.max_bytes is not None and expected is not None:
                if expected > self.max_bytes:
                    raise UserError(f"model {label!r} needs {expected / 2**20:,.0f} MB, more than this server keeps "
                                    f"for models ({self.max_bytes / 2**20:,.0f} MB)")
                self._evict(self.max_bytes - expected)
            try:
                model = self.loader(name, weights=weights, device=self.device)
            except ValueError as exc:  # e.g. weights given for a checkpoint path
                raise UserError(f"model {label!r}: {exc}") from None
            if self.compile_models:
                model.compile_for_inference()
            self.loads += 1
            size = model_bytes(model)
            if self.max_bytes is not None:
                self._evict(self.max_bytes - size)
            self._models[label] = (model, size)
            return model

    def _evict(self, room: int) -> None:
        """Drop the least recently used models until the others take at most ``room`` bytes (lock held); a run
        still using one keeps it alive until it ends."""
        while self._models and sum(size for _, size in self._models.values()) > room:
            self._models.popitem(last=False)
            self.evictions += 1
