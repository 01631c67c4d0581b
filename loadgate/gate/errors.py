"""The gate's input errors: one line, naming the file, line/key and value, and the fix (exit 2)."""

from __future__ import annotations

EXIT_PASS = 0
EXIT_BREACH = 1
EXIT_BAD_INPUT = 2


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
        return f"check_sla: error: {location}: {self.what} (got {_show(self.got)}); {self.fix}"


def _show(value: object) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 120 else value[:117] + "..."
        return '"' + text.replace('"', '\\"') + '"'
    return repr(value) if value is not None else "nothing"
