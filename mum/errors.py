"""Errors a user can cause (bad files, bad input). Front ends print them as one line and exit non-zero."""

from __future__ import annotations

import argparse
import unicodedata


def is_unprintable(ch: str) -> bool:
    """A control character (newline, tab, escape, DEL ...), a line or paragraph separator, or an undecodable
    byte (a lone surrogate, as Python reads a non-UTF-8 file name)."""
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def one_line(text: str) -> str:
    """``text`` with what :func:`is_unprintable` finds spelled out as Python escapes (``\\n``, ``\\x1b``,
    ``\\udcff``), so that it prints as one line and cannot move the cursor."""
    return "".join(repr(ch)[1:-1] if is_unprintable(ch) else ch for ch in text)


class UserError(Exception):
    """An error caused by the user's input; its message is complete and fit to print as one line."""


class CheckpointError(UserError):
    """A weights file is missing, unreadable, truncated, not a checkpoint, or of another architecture."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OneLineArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors (an unknown option, a malformed or missing value) are one
    ``error:`` line and exit status 2, like every other error a user can cause; ``--help`` prints the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {one_line(message)} (see {self.prog} --help)\n")
