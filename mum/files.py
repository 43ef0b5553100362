"""Atomic writes: a file or folder appears under its final name complete or not at all, and a failure leaves
nothing behind and never touches a file already there. The temporary sibling is created with the permissions
a plain ``open(path, "w")`` / ``mkdir`` would give (mode 0o666 / 0o777 less the process umask), unlike
``tempfile.mkstemp``'s owner-only 0o600, so results stay readable by the people and services they are for."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


def _sibling(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic)."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` (same suffix, so writers that infer the format from it
    work); rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, path.suffix)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; move it into place only if the block succeeds (an
    existing ``path`` is removed first only with ``overwrite``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "")
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        if path.exists() and overwrite:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
