"""VGGT-style heads on the MuM encoder: aggregator, camera head, DPT heads, evaluation metrics, the Reconstructor model
and its registry (``load_model``, ``list_models``)."""

from .aggregator import Aggregator
from .camera_head import CameraHead
from .config import AggregatorConfig, CameraHeadConfig, DPTConfig, ReconstructorConfig
from .dinov2 import DinoVisionTransformer
from .dpt import DPTHead
from .model import Reconstructor, build_reconstructor
from .prediction import Prediction
from .registry import DEFAULT_MODEL, PRESETS, list_models, load_model, load_weights, model_config, save_model

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "Aggregator",
    "AggregatorConfig",
    "CameraHead",
    "CameraHeadConfig",
    "DPTConfig",
    "DPTHead",
    "DinoVisionTransformer",
    "Prediction",
    "Reconstructor",
    "ReconstructorConfig",
    "build_reconstructor",
    "list_models",
    "load_model",
    "load_weights",
    "model_config",
    "save_model",
]
