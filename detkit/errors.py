"""Errors that reach the user as one line on stderr, never as a traceback."""

from __future__ import annotations

from collections.abc import Mapping


def cli_text(text: str, flags: Mapping[str, str] | None) -> str:
    """``text`` as the CLI prints it: each library phrase of ``flags`` (``"lenient=True"``) replaced by the
    CLI's (``"--lenient"``), in order. The one home of the rule "library messages describe values, the CLI
    names flags": :meth:`DetkitError.cli_message` and :func:`detkit.console.warn` / ``info`` use it.

    Args:
        text: the library's message.
        flags: library phrase -> CLI phrase; None or empty: ``text`` as it is.
    """
    for lib, cli in (flags or {}).items():
        text = text.replace(lib, cli)
    return text


class DetkitError(Exception):
    """An error the user can act on. The CLI prints ``detkit: <message>`` and exits with ``exit_code``.

    Args:
        message: one line naming the file, the record and what is wrong.
        exit_code: 2 for usage errors and unusable input (the default), 1 for findings.
        flags: the library's spelling of a remedy -> the CLI's (``{"lenient=True": "--lenient"}``): the
            message names the keyword argument, :meth:`cli_message` the flag the user types.
    """

    def __init__(self, message: str, exit_code: int = 2, *, flags: dict[str, str] | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.flags = dict(flags or {})

    def cli_message(self) -> str:
        """The line the CLI prints: library messages describe values and keyword arguments; this names
        the flags (see ``flags``; :class:`OptionError` names its option's flag)."""
        return cli_text(str(self), self.flags)


class OptionError(DetkitError):
    """A bad value of a named option. The library's message names the value (``optimizer must be sgd or
    adamw, got 'x'``); the CLI prints the flag the user typed (``--optimizer must be ...``).

    Args:
        option: the config field / keyword argument, e.g. ``img_size``.
        what: what is wrong, e.g. ``must be a multiple of 32, got 50``.
        flag: the command-line spelling when it is not ``--img-size``.
    """

    def __init__(self, option: str, what: str, flag: str | None = None, exit_code: int = 2):
        super().__init__(f"{option} {what}", exit_code=exit_code)
        self.option, self.what = option, what
        self.flag = flag or "--" + option.replace("_", "-")

    def cli_message(self) -> str:
        return f"{self.flag} {self.what}"


class InputError(DetkitError):
    """Malformed or unusable input file: ``InputError(path, where, what)`` -> ``path:where: what``.

    Args:
        path: the file.
        where: the record in it (a JSON path, ``line 3``), or None for the whole file.
        what: what is wrong, in a few words.
        code: the ``validate`` finding code it becomes when reported instead of raised
            (see :mod:`detkit.datasets.checks.findings`); None: the reader's default.
        flags: as for :class:`DetkitError`.
    """

    def __init__(
        self,
        path: object,
        where: str | int | None,
        what: str,
        *,
        code: str | None = None,
        flags: dict[str, str] | None = None,
    ):
        loc = f"{path}" if where in (None, "") else f"{path}:{where}"
        super().__init__(f"{loc}: {what}", exit_code=2, flags=flags)
        self.path, self.where, self.what = str(path), where, what
        self.code: str | None = code
