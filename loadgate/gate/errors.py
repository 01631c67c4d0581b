"""The gate's input errors: one line, naming the file, line/key and value, and the fix (exit 2).

Also the one check every input file passes before it is opened: a regular file of a sane size (a FIFO,
``/dev/zero`` or a directory would block, grow without end or fail oddly once read).
"""

from __future__ import annotations

import os
import re
import stat

from loadgate.contract import EXIT_BAD_INPUT, EXIT_BREACH, EXIT_PASS

__all__ = ["EXIT_BAD_INPUT", "EXIT_BREACH", "EXIT_PASS", "GateInputError", "input_file", "one_line"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


class GateInputError(Exception):
    """The gate cannot judge: a file, field or expression is missing or malformed."""

    def __init__(self, file: str, where: str | int | None, what: str, got: object, fix: str) -> None:
        self.file = str(file)
        self.where = where
        self.what = what
        self.got = got
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        location = self.file if self.where in (None, "") else f"{self.file}:{self.where}"
        return one_line(f"check_sla: error: {location}: {self.what} (got {_show(self.got)}); {self.fix}")


def one_line(text: str) -> str:
    """Control characters (line breaks, NUL, ...) written as escapes: an error is always one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _show(value: object) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 120 else value[:117] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    return repr(value) if value is not None else "nothing"


def _number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return repr(value)  # nan, inf, -inf
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def show_number(value: float) -> str:
    """A figure as the error shows it: -5 (not -5.0), 10.5, inf, nan."""
    return _number(float(value))


def _size(limit: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def input_file(path: str, what: str, limit: int, fix: str) -> bool:
    """True when ``path`` is a readable regular file of at most ``limit`` bytes, False when it does not
    exist; anything else (a directory, FIFO, device, socket, a huge or unreadable file) is exit 2. Only
    ``stat`` and ``access`` are called: nothing is opened, so a FIFO cannot block and /dev/zero is not read."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        raise GateInputError(path, None, f"cannot read {what}", _reason(error), fix) from None
    if stat.S_ISDIR(info.st_mode):
        raise GateInputError(path, None, f"{what} is a directory, not a file", path, fix)
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise GateInputError(path, None, f"{what} is not a regular file", kind, fix)
    if info.st_size > limit:
        raise GateInputError(
            path, None, f"{what} is larger than {_size(limit)}", f"{info.st_size} bytes", fix
        )
    if not os.access(path, os.R_OK):
        raise GateInputError(
            path,
            None,
            f"cannot read {what}",
            "permission denied",
            "make it readable (check its owner and mode)",
        )
    return True


def _reason(error: BaseException) -> str:
    return (error.strerror if isinstance(error, OSError) else None) or str(error)
