"""What every command-line entry point shares: bad input ends in one clear line, not a traceback.

The errors funk raises for bad input (a malformed CSV, a foreign checkpoint, a
missing image) are ``ValueError`` or ``OSError`` subclasses whose messages
already name the file, field, expected and found value; a traceback adds
nothing for the user. ``FUNK_TRACEBACK=1`` shows it anyway, for debugging.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Sequence

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
