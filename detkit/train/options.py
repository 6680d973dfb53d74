"""Options declared once: a trainer's config dataclass is the one place an option lives.

:func:`opt` gives each field its help text, its check (run by :func:`check_config`, so the Python API gets the
CLI's one-line errors), its flag spelling and whether ``--resume`` may change it; :func:`config_command`
builds the Typer command from the fields (so a new option is one line); :func:`resumed_config` applies the
resume rule. Light on purpose (no torch): the CLI imports it to build its commands."""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Any

from detkit.errors import DetkitError, OptionError

Check = tuple[Callable[[Any], bool], "str | Callable[[], str]"]


def opt(
    default: Any = MISSING,
    help: str = "",
    *,
    check: Check | None = None,
    flag: str | None = None,
    resume: bool = False,
    per_call: bool = False,
    cli: bool = True,
) -> Any:
    """A config field declared once.

    Args:
        default: the default value (none: a required field).
        help: the ``--help`` text.
        check: (predicate, what the value must be); a failing value gives ``--flag <what>, got <value>``.
            A field whose default is None skips the check when None.
        flag: the Typer declaration when not ``--field-name`` (e.g. ``--amp/--no-amp``).
        resume: ``--resume`` may change it (runtime options); the others come back from the checkpoint.
        per_call: a limit of one call (``--max-steps``): ``--resume`` may change it, and resets it when
            not given.
        cli: offered on the command line.
    """
    meta = {
        "help": help,
        "check": check,
        "flag": flag,
        "resume": resume or per_call,
        "per_call": per_call,
        "cli": cli,
    }
    return field(default=default, metadata=meta)


def flag_name(f: Field) -> str:
    """The option's ``--name`` as the user types it."""
    flag = f.metadata.get("flag")
    return flag.split("/")[0] if flag else "--" + f.name.replace("_", "-")


def check_config(cfg: Any) -> None:
    """Run every field's check; the first failure is one line (exit 2)."""
    for f in fields(cfg):
        check = f.metadata.get("check")
        value = getattr(cfg, f.name)
        if check is None or (value is None and f.default is None):
            continue
        ok_fn, what = check
        try:
            ok = bool(ok_fn(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            what = what() if callable(what) else what
            raise OptionError(f.name, f"{what}, got {value!r}", flag=flag_name(f))


def finite(lo: float | None = None, *, above: float | None = None, below: float | None = None) -> Check:
    """A finite number >= ``lo`` (or > ``above``, < ``below``), with its message."""
    parts = [
        f">= {lo:g}" if lo is not None else "",
        f"> {above:g}" if above is not None else "",
        f"< {below:g}" if below is not None else "",
    ]

    def ok(v: float) -> bool:
        return (
            math.isfinite(v)
            and (lo is None or v >= lo)
            and (above is None or v > above)
            and (below is None or v < below)
        )

    return ok, "must be " + " and ".join(p for p in parts if p)


def at_least(n: int) -> Check:
    return (lambda v: v >= n), f"must be at least {n}"


def resume_fields(cls: type) -> tuple[str, ...]:
    """The options ``--resume`` may change."""
    return tuple(f.name for f in fields(cls) if f.metadata.get("resume"))


def resumed_config(cls: type, saved: dict[str, Any], given: dict[str, Any], run: Path) -> Any:
    """The run's saved config with the options the user gave; a given option that may not change on
    resume and differs from the run's is an error (it would describe another run)."""
    names = {f.name for f in fields(cls)}
    values = {k: v for k, v in saved.items() if k in names}
    values.update({f.name: f.default for f in fields(cls) if f.metadata.get("per_call")})
    may = resume_fields(cls)
    by_name = {f.name: f for f in fields(cls)}
    lib, cli = [], []  # the clashes in the library's words (img_size=320) and the CLI's (--img-size 320)
    for name, value in given.items():
        if name not in names:
            continue
        if name in may:
            values[name] = value
        elif name in values and value != values[name]:
            lib.append(f"{name}={value!r} (the run has {values[name]!r})")
            cli.append(f"{flag_name(by_name[name])} {value} (the run has {values[name]})")
    if lib:
        clause = f"leave out {', '.join(lib)} (only {', '.join(may)} may change)"
        flags = ", ".join(flag_name(by_name[n]) for n in may)
        raise DetkitError(
            f"{run}: a resumed run keeps its own options; {clause} or start a new run",
            flags={clause: f"leave out {', '.join(cli)} (only {flags} may change)"},
        )
    return cls(**values)


def config_command(
    app: Any,
    name: str,
    configs: Sequence[type],
    *,
    extra: Iterable[tuple[str, Any, Any]] = (),
    exclude: Iterable[str] = (),
) -> Callable[[Callable], Callable]:
    """Register ``body(ctx, values)`` as the Typer command ``name`` whose options are the fields of
    ``configs`` (help, default and flag from :func:`opt`) plus ``extra`` (name, annotation, default).

    Required fields become optional options (a resumed run has them); ``body`` checks what it needs.
    """
    import typer  # lazy: the config modules import this one; only building a command needs typer

    skip = set(exclude)
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for cls in configs:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if not f.metadata.get("cli", True) or f.name in skip or any(p.name == f.name for p in params):
                continue
            typ, default = hints[f.name], f.default
            if default is MISSING:
                typ, default = typ | None, None
            decls = (f.metadata["flag"],) if f.metadata.get("flag") else ()
            ann = typing.Annotated[typ, typer.Option(*decls, help=f.metadata.get("help", ""))]
            params.append(
                inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
            )
    for pname, ann, default in extra:
        params.append(
            inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        )

    def register(body: Callable) -> Callable:
        def command(ctx: Any, **values: Any) -> Any:
            return body(ctx, values)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {}
        command.__doc__, command.__name__ = body.__doc__, body.__name__
        app.command(name)(command)
        return body

    return register


# ---- runtime options both trainers take (``--resume`` may change them) ---------------------------------
def device_opt() -> Any:
    return opt("auto", "auto, cpu or cuda.", resume=True)


def compile_opt() -> Any:
    return opt(False, "torch.compile the model.", flag="--compile", resume=True)


def threads_opt(chosen_from: str = "the free cores") -> Any:
    """``--threads``; the default count comes from ``chosen_from`` (see :mod:`detkit.train.threads`)."""
    help_ = f"torch threads (default: chosen from {chosen_from}; kept by --resume)."
    return opt(None, help_, check=at_least(1), resume=True)


def log_every_opt() -> Any:
    return opt(
        30.0, "Seconds between progress lines when stderr is not a terminal.", check=finite(0), resume=True
    )


def run_folder_options() -> list[tuple[str, Any, Any]]:
    """The ``extra`` options every trainer command takes for its run folder (see :mod:`detkit.train.harness`):
    ``--resume RUN`` continues the run exactly, ``--exist-ok`` starts over in a folder holding one."""
    import typer  # lazy: the config modules import this one; only building a command needs typer

    resume = typer.Option("--resume", help="Continue the run in this folder exactly (its last.pt).")
    exist_ok = typer.Option("--exist-ok", help="Start over in a folder holding a run (deletes its files).")
    return [
        ("resume", typing.Annotated[str | None, resume], None),
        ("exist_ok", typing.Annotated[bool, exist_ok], False),
    ]


def given_options(ctx: Any) -> set[str]:
    """Names of the options typed on the command line (not defaults)."""
    return {n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"}
