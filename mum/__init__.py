"""MuM: multi-view masked image modeling encoder and autoencoder."""

from .autoencoder import MAEOutput, Masking, MuMAutoEncoder, build_autoencoder
from .config import (
    AUTOENCODER_PRESETS,
    ENCODER_PRESETS,
    AutoEncoderConfig,
    EncoderConfig,
    autoencoder_config,
    encoder_config,
)
from .encoder import EncoderFeatures, MuMEncoder, build_encoder

__all__ = [
    "AUTOENCODER_PRESETS",
    "ENCODER_PRESETS",
    "AutoEncoderConfig",
    "EncoderConfig",
    "EncoderFeatures",
    "MAEOutput",
    "Masking",
    "MuMAutoEncoder",
    "MuMEncoder",
    "autoencoder_config",
    "build_autoencoder",
    "build_encoder",
    "encoder_config",
]
