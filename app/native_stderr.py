"""Keep native libraries' own stderr lines (printed by C/C++ code straight to file descriptor 2) away from the
user, so that a command's output stays its progress lines and one-line errors."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional


@contextlib.contextmanager
def native_stderr_to(path: Optional[str | os.PathLike]):
    """Send what native code writes to file descriptor 2 to ``path`` (COLMAP's glog lines, which ignore
    ``pycolmap.logging.minloglevel`` in its mapping code; OpenCV's AVI parser complaints); Python's own
    ``sys.stderr`` (progress lines, errors) keeps going to the terminal. ``None``: change nothing.
    Process-wide while it lasts: native writes of other threads go to ``path`` too."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        sys.stderr = open(os.dup(terminal), "w", buffering=1, encoding=python_stderr.encoding or "utf-8", errors="replace")
        try:
            yield
        finally:
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(terminal, 2)
            os.close(terminal)
