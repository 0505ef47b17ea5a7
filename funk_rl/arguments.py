"""One dataclass of arguments per command, parsed into the CLI (cleanrl's way): each field is declared once.

A field's flag is ``--field-name``; its type comes from its default (``bool`` becomes ``--x/--no-x``, a
tuple takes one or more values, ``None`` reads a string), its help and choices from
``field(metadata={"help": ..., "choices": ...})``. The dataclass's ``__post_init__`` validates, so bad
values end in one ``error:`` line through :func:`funk_perception.cli.command`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence, TypeVar

T = TypeVar("T")


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with one option per field of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        default = field.default
        if default is dataclasses.MISSING:
            default = field.default_factory()  # type: ignore[misc]
        kwargs: dict[str, Any] = {"default": default, "help": field.metadata.get("help", "")}
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs.update(nargs="+", type=type(default[0]) if default else str)
        elif default is not None:
            kwargs["type"] = type(default)
        if kwargs["help"] and not isinstance(default, bool):
            kwargs["help"] += " (default: %(default)s)"
        parser.add_argument(f"--{field.name.replace('_', '-')}", **kwargs)
    return parser


def parse_config(cls: type[T], argv: Sequence[str] | None, prog: str, description: str) -> T:
    """``cls(**parsed arguments)``; tuples come back as tuples."""
    values = vars(build_parser(cls, prog, description).parse_args(argv))
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
