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
from typing import Iterator, Sequence

from mum.errors import UserError


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


def check_output_path(path: str | os.PathLike, overwrite: bool, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse to overwrite an existing output unless ``overwrite``; make sure its folder can be created.

    Never acceptable, whatever ``overwrite`` says: an empty path, the current folder or one above it (or the
    file-system root), and an output that is or contains one of ``inputs`` (replacing it would delete them)."""
    if not str(path).strip():
        raise UserError("the output path is empty")
    path = Path(path)
    target = path.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents or target == Path(target.anchor):
        raise UserError(f"{path}: is the current folder or one above it; name a new file or folder")
    for item in inputs:
        source = Path(item).resolve()
        if target == source or target in source.parents:
            raise UserError(f"{path}: is or contains the input {item}; write the output somewhere else")
    if path.exists() and not overwrite:
        raise UserError(f"{path}: already exists (use --overwrite to replace it)")
    ancestor = path.absolute().parent
    while not ancestor.exists():  # the folders to be created must hang off a writable folder
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{ancestor}: is not a folder, cannot write {path} under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{ancestor}: folder is not writable, cannot write {path}")
    return path
