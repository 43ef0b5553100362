"""What every command-line front end shares: one-line errors, exit codes, device choice (safe output paths: mum.files)."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from mum.errors import UserError

EXIT_USER_ERROR = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_INTERRUPTED = 130


def print_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch running out of memory: CUDA ("CUDA out of memory") or the CPU allocator
    ("DefaultCPUAllocator: can't allocate memory")."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def friendly_errors(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a ``main`` so user errors, out-of-memory and Ctrl-C end with one line and a non-zero exit code."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return int(main(*args, **kwargs) or 0)
        except UserError as exc:
            print_error(str(exc))
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print_error("interrupted")
            return EXIT_INTERRUPTED
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
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
