"""Per-frame dense maps of a long input kept on disk instead of in memory.

A 1000-frame video holds 1000 depth, confidence, validity and colour maps (12 bytes a pixel of the network's
grid: about 0.45 MB a frame at 224 × 168) from the network pass to the exports. :func:`frames_on_disk` gives such
an ``[S, ...]`` array as an ordinary NumPy array mapped onto an **unlinked temporary file** (``TMPDIR``): every
NumPy operation works on it, the operating system frees the file when the array is gone (at any exit, a crash or
a signal included: nothing is left to clean up), and a stage that walks the frames a window at a time calls
:func:`release_pages` after each window, which drops the pages it touched from the process's memory (they stay
in the file). Peak memory is then one window's maps, whatever the number of frames; the disk holds
12 bytes a pixel per frame until the run ends. Where ``TMPDIR`` is a RAM disk (tmpfs) the file itself is in
memory, though not in this process's resident set.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import tempfile

import numpy as np

from mum.errors import UserError


def frames_on_disk(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A zero-filled, writeable ``shape`` array of ``dtype`` backed by an unlinked temporary file (see the module
    docstring), its disk space reserved at once (a :class:`UserError` naming ``TMPDIR`` where there is not
    enough). An empty shape gives an ordinary empty array."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(shape, dtype)
    with tempfile.TemporaryFile(prefix="mum-frame-maps-") as fh:  # unlinked at once; the mapping keeps it alive
        _reserve(fh.fileno(), nbytes)
        mapped = mmap.mmap(fh.fileno(), nbytes, access=mmap.ACCESS_WRITE)
    return np.frombuffer(mapped, dtype).reshape(shape)


def check_room(nbytes: int, what: str) -> None:
    """Refuse (one :class:`UserError` line naming ``TMPDIR``) a run whose maps will need ``nbytes`` on the disk of
    ``TMPDIR`` when it has less free space, before the run's long work starts (:func:`frames_on_disk` reserves
    each array's space only when the array is made, late in a long run). ``what``: what needs the space."""
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if nbytes > free:
        raise UserError(f"{folder}: {what} need about {_size(nbytes)} on disk and {_size(free)} are free; set TMPDIR "
                        "to a folder on a disk with more space (or give fewer frames: --max-frames)")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.0f} MB"


def _reserve(fd: int, nbytes: int) -> None:
    """The file's blocks reserved now, so that a full disk is one :class:`UserError` here rather than a crash
    (SIGBUS) when a frame is written into the mapping; sparse where the system cannot reserve."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            os.ftruncate(fd, nbytes)
            return
        raise UserError(f"{tempfile.gettempdir()}: no room for the frames' dense maps ({nbytes / 1e6:.0f} MB: "
                        f"{exc.strerror or exc}); set TMPDIR to a folder on a disk with more space") from None
    except AttributeError:  # no posix_fallocate (macOS)
        os.ftruncate(fd, nbytes)


def _mapping(array: np.ndarray) -> mmap.mmap | None:
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None) if isinstance(base, np.ndarray) else getattr(base, "obj", None)
    return base


def on_disk(array: np.ndarray) -> bool:
    """Whether ``array`` (or what it views) was made by :func:`frames_on_disk`."""
    return isinstance(array, np.ndarray) and _mapping(array) is not None


def release_pages(*arrays: np.ndarray) -> None:
    """Drop the pages of :func:`frames_on_disk` arrays from this process's memory (their contents stay in the
    file and come back when read again); ordinary arrays are left as they are."""
    for array in arrays:
        mapped = _mapping(array) if isinstance(array, np.ndarray) else None
        if mapped is not None and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_DONTNEED)
