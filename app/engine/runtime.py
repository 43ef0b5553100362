"""What every command-line front end shares: one-line errors, exit codes, device choice (safe output paths: mum.files);
and what the engine asks of the machine and the user's terminal: available memory, progress bars."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from mum.errors import UserError, one_line
from mum.pycolmap_import import caused_by_interrupt  # noqa: F401 - the front ends' import

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_INTERRUPTED = 130  # Ctrl-C; SIGTERM 143, SIGHUP 129 (128 + the signal's number, as shells report them)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, as one line whatever the message holds (a file name with a newline or an
    escape sequence is spelled out: ``\\n``, ``\\x1b``)."""
    print(f"error: {one_line(message)}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like a Ctrl-C so every ``finally`` (the atomic writers' clean-up) runs;
    ``signum`` is the signal (the exit status is ``128 + signum``, as a shell reports a process it killed)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` (a ``KeyboardInterrupt``) instead of
    killing the process outright, so temporary files are removed, and Ctrl-C its ``KeyboardInterrupt``; after the
    first, all three are ignored until the block ends (a second Ctrl-C during the clean-up ended the process with
    native threads still running: SIGABRT). Signals someone chose to ignore (``nohup``) or to handle stay as they
    are; outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame) -> None:
        for sig in previous:  # a second signal (two quick Ctrl-Cs) must not cut the clean-up that this one starts
            signal.signal(sig, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        default = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
        if sig is not None and signal.getsignal(sig) is default:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """A Ctrl-C, SIGTERM or SIGHUP that arrives while the block runs acts when it ends (the first one, through the
    handler it would have met): for imports of libraries that catch every exception while importing their
    optional parts (trimesh, matplotlib), which turned the interrupt into a broken module and a finished run.
    Only Python-level handlers are deferred (not ``SIG_DFL`` or ``SIG_IGN``); outside the main thread nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    handlers = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and callable(signal.getsignal(sig)):
            handlers[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if pending:
            handlers[pending[0]](pending[0], None)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch running out of memory: CUDA ("CUDA out of memory") or the CPU allocator
    ("DefaultCPUAllocator: can't allocate memory")."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def friendly_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a ``main`` so user errors, out-of-memory and Ctrl-C (or SIGTERM, SIGHUP) end with one line and a
    non-zero exit code."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            with signals_as_interrupt():
                return int(main(*args, **kwargs) or 0)
        except UserError as exc:
            print_error(str(exc))
            return EXIT_USER_ERROR
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                print_error(f"interrupted ({exc})")
                return exc.exit_status
            print_error("interrupted")
            return EXIT_INTERRUPTED
        except Exception as exc:
            if caused_by_interrupt(exc):  # Ctrl-C while an extension module was being imported
                print_error("interrupted")
                return EXIT_INTERRUPTED
            if not isinstance(exc, (MemoryError, RuntimeError)) or not is_out_of_memory(exc):
                raise
            print_error("out of memory: use fewer views (--max-frames) or a smaller resolution (--size)")
            return EXIT_OUT_OF_MEMORY

    return wrapper


def choose_device(requested: str | None = None) -> str:
    """``cuda`` when available (or as requested), else ``cpu``; a request for an absent CUDA is a user error."""
    import torch

    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {requested}: unknown device (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {requested}: not supported (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {requested} requested but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) present")
    return requested


def available_memory(device: str = "cpu") -> int:
    """Bytes available for a pass: free accelerator memory on CUDA, else the system's available memory."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """``|#####---------------|``: ``done`` of ``total`` (no square brackets: rich would read them as markup)."""
    filled = int(round(width * done / max(total, 1)))
    return "|" + "#" * filled + "-" * (width - filled) + "|"
