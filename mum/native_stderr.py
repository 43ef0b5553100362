"""Keep native libraries' own stderr lines (printed by C/C++ code straight to file descriptor 2) away from the
user, so that a command's output stays its progress lines and one-line errors."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Optional


_lock = threading.Lock()
_depth = 0  # how many callers are inside native_stderr_to (threads of one process share file descriptor 2)
_saved: tuple[int, object] | None = None  # (the terminal's fd 2, Python's sys.stderr) while redirected


@contextlib.contextmanager
def native_stderr_to(path: Optional[str | os.PathLike]):
    """Send what native code writes to file descriptor 2 to ``path`` (COLMAP's glog lines, which ignore
    ``pycolmap.logging.minloglevel`` in its mapping code; OpenCV's AVI parser complaints); Python's own
    ``sys.stderr`` (progress lines, errors) keeps going to the terminal. ``None``: change nothing.

    Process-wide while it lasts, and safe to use from several threads at once (the web app's concurrent
    runs): the first caller redirects, later ones share its redirection (their ``path`` is not opened), the last
    one to leave restores the terminal."""
    global _depth, _saved
    if path is None:
        yield
        return
    with _lock:
        if _depth == 0:
            sys.stderr.flush()
            terminal = os.dup(2)
            python_stderr = sys.stderr
            with open(path, "ab") as log:
                os.dup2(log.fileno(), 2)
            sys.stderr = open(os.dup(terminal), "w", buffering=1, encoding=getattr(python_stderr, "encoding", None)
                              or "utf-8", errors="replace")
            _saved = (terminal, python_stderr)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                terminal, python_stderr = _saved
                _saved = None
                sys.stderr.close()
                sys.stderr = python_stderr
                os.dup2(terminal, 2)
                os.close(terminal)
