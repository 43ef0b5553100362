"""Data engine: synthetic multi-view scenes with exact ground truth, readers/writers for real formats, and
the PyTorch dataset layer. See :mod:`mum.data.synthetic`, :mod:`mum.data.dataset` and :mod:`mum.data.readers`."""

from mum.data.scene import Scene
from mum.data.synthetic import SPLITS, TEST_SEEDS, TRAIN_SEEDS, VAL_SEEDS, SyntheticConfig, generate_scene, seed_for

__all__ = ["SPLITS", "Scene", "SyntheticConfig", "TEST_SEEDS", "TRAIN_SEEDS", "VAL_SEEDS", "generate_scene", "seed_for"]
