"""Errors a user can cause (bad files, bad input). Front ends print them as one line and exit non-zero."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; its message is complete and fit to print as one line."""


class CheckpointError(UserError):
    """A weights file is missing, unreadable, truncated, not a checkpoint, or of another architecture."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
