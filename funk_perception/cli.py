"""What every command-line entry point shares: bad input ends in one clear line, not a traceback; and one
dataclass of arguments per command, parsed into the CLI (cleanrl's way), so each field is declared once.

The errors funk raises for bad input (a malformed CSV, a foreign checkpoint, a
missing image) are ``ValueError`` or ``OSError`` subclasses whose messages
already name the file, field, expected and found value; a traceback adds
nothing for the user. ``FUNK_TRACEBACK=1`` shows it anyway, for debugging.

Arguments: a field's flag is ``--field-name``; its type comes from its default (``bool`` becomes
``--x/--no-x``, a tuple takes one or more values, ``None`` reads a string unless :func:`arg` names a type),
its help, choices, other flag spellings and repeatability from :func:`arg`. The dataclass's
``__post_init__`` validates, so bad values end in one ``error:`` line through :func:`command`. Why our own
few lines rather than tyro or draccus (both installable): the flags users and scripts already call
(``--model`` repeated into ``models``, ``--no-figures``, ``--squash``) keep their spelling, and no dependency
is added for 60 lines (docs/DESIGN.md, "Command lines").
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Main = Callable[[Sequence[str] | None], int]


def command(main: Main) -> Main:
    """Wrap a CLI ``main(argv) -> exit code``: user errors print ``error: ...`` and exit with 2."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except (ValueError, OSError) as exc:
            if os.environ.get("FUNK_TRACEBACK"):
                raise
            print(f"error: {exc}\n(set FUNK_TRACEBACK=1 to see the traceback)", file=sys.stderr)
            return 2

    return wrapper


def arg(
    help: str = "",
    *,
    choices: Sequence[object] | None = None,
    flags: Sequence[str] = (),
    append: bool = False,
    type: Callable[[str], object] | None = None,
    required: bool = False,
    false_flags: Sequence[str] = (),
) -> dict[str, Any]:
    """A field's CLI metadata, for ``field(default=..., metadata=arg(...))``: ``flags`` replace ``--field-name``
    (the first is the main spelling), ``append`` makes a list field a repeatable flag, ``false_flags`` are
    extra spellings that set a ``bool`` field to False (beside ``--no-<flag>``)."""
    return {
        "help": help,
        "choices": choices,
        "flags": tuple(flags),
        "append": append,
        "type": type,
        "required": required,
        "false_flags": tuple(false_flags),
    }


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one option per init field of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        meta = f.metadata
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        flags = list(meta.get("flags") or ()) or [f"--{f.name.replace('_', '-')}"]
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "help": meta.get("help", "")}
        if meta.get("choices") is not None:
            kwargs["choices"] = meta["choices"]
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
            if meta.get("false_flags"):
                parser.add_argument(
                    *meta["false_flags"], dest=f.name, action="store_false", help=f"same as --no-{flags[0][2:]}"
                )
        elif meta.get("append"):
            kwargs.update(action="append", default=list(default), type=meta.get("type") or str)
        elif isinstance(default, (tuple, list)):
            kwargs.update(nargs="+", type=meta.get("type") or (type(default[0]) if default else str))
        elif meta.get("type") is not None:
            kwargs["type"] = meta["type"]
        elif default is not None:
            kwargs["type"] = type(default)
        if meta.get("required"):
            kwargs.update(required=True, default=None)
        elif kwargs["help"] and not isinstance(default, bool):
            kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(*flags, **kwargs)
    return parser


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """``cls(**the parsed fields)``; tuple fields come back as tuples."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(
        **{k: tuple(v) if isinstance(v, list) and isinstance(names[k].default, tuple) else v for k, v in values.items()}
    )


def parse_config(cls: type[T], argv: Sequence[str] | None, prog: str, description: str) -> T:
    """Parse ``argv`` into ``cls``: :func:`build_parser` then :func:`config_from_args`."""
    return config_from_args(cls, build_parser(cls, prog, description).parse_args(argv))
