"""Errors that reach the user as one line on stderr, never as a traceback."""

from __future__ import annotations


class DetkitError(Exception):
    """An error the user can act on. The CLI prints ``detkit: <message>`` and exits with ``exit_code``.

    Args:
        message: one line naming the file, the record and what is wrong.
        exit_code: 2 for usage errors and unusable input (the default), 1 for findings.
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class InputError(DetkitError):
    """Malformed or unusable input file: ``InputError(path, where, what)`` -> ``path:where: what``."""

    def __init__(self, path: object, where: str | int | None, what: str):
        loc = f"{path}" if where in (None, "") else f"{path}:{where}"
        super().__init__(f"{loc}: {what}", exit_code=2)
        self.path, self.where, self.what = str(path), where, what
