"""Problems found in a spec, collected as values and printed all at once."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Severity(enum.Enum):
    """How bad a problem is: errors stop generation; warnings do too under `--strict`."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One problem, located by a JSON pointer into the spec document."""

    severity: Severity
    pointer: str
    message: str

    @classmethod
    def error(cls, pointer: str, message: str) -> Diagnostic:
        """An error at `pointer`."""
        return cls(Severity.ERROR, pointer, message)

    @classmethod
    def warning(cls, pointer: str, message: str) -> Diagnostic:
        """A warning at `pointer`."""
        return cls(Severity.WARNING, pointer, message)


@dataclass(frozen=True, order=True)
class Located:
    """A diagnostic placed at a 1-based line and column of a file: the spec itself, or
    `file` (as shown) when it is in another file the spec references."""

    line: int
    column: int
    severity: str
    message: str
    file: str = ""

    def format(self, path: str) -> str:
        """The `file:line:column: severity: message` form compilers and editors understand."""
        return f"{self.file or path}:{self.line}:{self.column}: {self.severity}: {self.message}"


class GenerationFailed(Exception):
    """Raised when generation cannot go on; carries every problem found, placed in the file."""

    def __init__(self, diagnostics: Iterable[Located]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__(f"{len(self.diagnostics)} problem(s)")
