"""The web app's models: which ones a user may pick, each loaded once per process and shared by all sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Loader = Callable[..., Any]  # heads.load_model(name_or_path, weights=None, device=None)


def default_loader(name: str, weights: str | None = None, device: str | None = None) -> Any:
    import heads

    return heads.load_model(name, weights=weights, device=device)


def registry_models() -> list[str]:
    """Preset names from the model registry (empty if it is unavailable)."""
    try:
        import heads

        return list(heads.list_models())
    except (ImportError, AttributeError):
        return []


def registry_default() -> str | None:
    try:
        import heads

        return heads.DEFAULT_MODEL
    except (ImportError, AttributeError):
        return None


class ModelCache:
    """Lazily loads each model choice once (keyed by choice label) and keeps it for the process's lifetime.

    ``choices`` maps the label shown in the UI to ``(name_or_path, weights)`` for the loader. A
    ``--weights`` file given on the command line becomes its own choice, labelled with the file name."""

    def __init__(
        self,
        device: str,
        model: str | None = None,
        weights: str | None = None,
        loader: Loader = default_loader,
        presets: list[str] | None = None,
        compile_models: bool = False,
    ) -> None:
        self.device = device
        self.loader = loader
        self.compile_models = compile_models  # torch.compile each model's blocks when it is loaded
        self.choices: dict[str, tuple[str, str | None]] = {}
        presets = registry_models() if presets is None else presets
        model = model or registry_default() or (presets[0] if presets else None)
        if weights:
            base = model or "mum-vitl16"
            self.choices[f"{base} + {Path(weights).name}"] = (base, weights)
        elif model and model not in presets:
            if loader is default_loader and not Path(model).is_file():  # fail at start-up, not at the first request
                raise ValueError(f"--model {model}: neither a model name ({', '.join(presets)}) nor a checkpoint file")
            self.choices[model] = (model, None)  # a checkpoint path or an unlisted preset
        for name in presets:
            self.choices.setdefault(name, (name, None))
        if not self.choices:
            raise ValueError("no model available: give --model")
        self.default = next(iter(self.choices)) if (weights or (model and model not in presets)) else model
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times a model was actually loaded (tests check it)

    @property
    def labels(self) -> list[str]:
        return list(self.choices)

    def get(self, label: str | None) -> Any:
        """The loaded model for ``label`` (the default for ``None``); loads it on first use."""
        from mum.errors import UserError

        label = label or self.default
        if label not in self.choices:
            raise UserError(f"unknown model {label!r}; choose one of: {', '.join(self.choices)}")
        with self._lock:
            if label not in self._models:
                name, weights = self.choices[label]
                try:
                    model = self.loader(name, weights=weights, device=self.device)
                except ValueError as exc:  # e.g. weights given for a checkpoint path
                    raise UserError(f"model {label!r}: {exc}") from None
                if self.compile_models:
                    model.compile_for_inference()
                self._models[label] = model
                self.loads += 1
            return self._models[label]
