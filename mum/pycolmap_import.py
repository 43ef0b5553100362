"""``import pycolmap`` the project's way (every module imports it through :func:`import_pycolmap`;
``tests/test_layering.py`` checks).

Importing pycolmap initialises glog, whose failure handler takes over SIGTERM (and the crash signals) at the C
level: a ``kill``/``docker stop`` during or after that import would then print a ~45-line stack dump and kill
the process without running any ``finally`` (temporary files left behind), while Python still believes its
own handler is installed. :func:`import_pycolmap` saves the C-level SIGTERM handler before the import and puts
it back after, from any thread, so SIGTERM keeps doing what the program set it to do (``mum-reconstruct`` and
``mum-web``: stop like Ctrl-C, cleaning up). The crash signals keep glog's handler. A Ctrl-C or SIGTERM while
the C++ module initialises surfaces from pybind11 as ``ImportError`` and from pycolmap as ``RuntimeError("Cannot
import the C++ backend ...")``: that is turned back into the ``KeyboardInterrupt`` it is. glog logs to stderr
only (``logtostderr``): by default it leaves three log files (``.HOST.USER.log.INFO.<date>.<pid>`` ...) in
``$TMPDIR`` on every run; callers keep its lines off a terminal with :mod:`mum.native_stderr`.

A signal that arrives while pycolmap's C++ code runs (feature extraction, matching) is handled when that call
returns to Python (seconds on the inputs the pipeline gives it; incremental mapping checks for signals itself).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

_KEPT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
_import_lock = threading.Lock()


def caused_by_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` comes from a ``KeyboardInterrupt`` anywhere in its cause/context chain: a Ctrl-C while a
    C++ extension initialises surfaces as ``ImportError`` (pybind11) and then, say, pycolmap's
    ``RuntimeError("Cannot import the C++ backend ... pip install")``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def c_signal_handlers_kept() -> Iterator[None]:
    """Whatever C-level handlers SIGTERM, SIGHUP and SIGINT have when the block starts, they have again when it
    ends (``sigaction`` through ``ctypes``, with an opaque buffer: no struct layout assumed; works in any
    thread). Where ``sigaction`` cannot be reached, the main thread re-installs Python's own handlers instead."""
    sigs = [getattr(signal, name) for name in _KEPT_SIGNALS if hasattr(signal, name)]
    saved = {}
    sigaction = None
    try:
        import ctypes

        sigaction = ctypes.CDLL(None, use_errno=True).sigaction
        for sig in sigs:
            buffer = ctypes.create_string_buffer(1024)  # larger than any libc's struct sigaction
            if sigaction(int(sig), None, buffer) == 0:
                saved[sig] = buffer
    except (OSError, AttributeError, ImportError):
        sigaction = None
    try:
        yield
    finally:
        if sigaction is not None:
            for sig, buffer in saved.items():
                sigaction(int(sig), buffer, None)
        elif threading.current_thread() is threading.main_thread():
            for sig in sigs:
                handler = signal.getsignal(sig)
                if handler is not None:  # None: a handler not installed from Python, left alone
                    signal.signal(sig, handler)


def import_pycolmap():
    """The ``pycolmap`` module, imported lazily (it costs 0.2 s) with the signal handlers kept (see the module
    docstring)."""
    with _import_lock:  # a second thread waits for the first's import, then finds the module
        module = sys.modules.get("pycolmap")
        if module is not None:
            return module
        with c_signal_handlers_kept():
            try:
                import pycolmap
            except Exception as exc:
                if caused_by_interrupt(exc):
                    raise KeyboardInterrupt from None
                raise
        pycolmap.logging.logtostderr = True  # glog's own files would be left in $TMPDIR by every run
        return pycolmap
