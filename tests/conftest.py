"""Shared fixtures: the reference-vector folder and the opt-in for slow/GPU tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import mum  # noqa: F401  (sets the CPU threading policy before any test module imports torch)

REPO = Path(__file__).resolve().parents[1]
# parity vectors produced by the official MuM and VGGT code (seeded random weights; see each README.md there)
REFERENCE = REPO / "tests" / "reference"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow or gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow/gpu test: run with --runslow")
    for item in items:
        if "slow" in item.keywords or "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mum_reference() -> Path:
    path = REFERENCE / "mum"
    assert path.is_dir(), f"MuM reference vectors missing: {path}"
    return path
