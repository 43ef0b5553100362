"""MuM: multi-view masked image modeling encoder and autoencoder."""

import os

# OpenMP threads that spin while waiting make every small CPU op take milliseconds as soon as another process
# competes for the cores (measured: one AdamW step of mum-tiny 5.4 s instead of 0.03 s on a loaded 2-core
# machine). Yielding threads cost little when the machine is idle. Must be set before torch starts OpenMP;
# an explicit OMP_WAIT_POLICY from the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
