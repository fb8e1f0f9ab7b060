"""The one exception hierarchy of tfc.

Every error a user can cause is a `TfcError`. Its `str()` is a single line that names the thing at
fault (an ONNX node, an IR op, a `path:line:col`) and says what to do. The CLI prints that line and
exits 1; anything that is not a `TfcError` is a bug in tfc and keeps its traceback.
"""

from __future__ import annotations


class TfcError(Exception):
    """A user-facing error: one line, names the culprit, suggests a fix."""


class ParseError(TfcError):
    """Bad IR text. Carries the position so the CLI can show the line with a caret."""

    def __init__(self, path: str, line: int, col: int, msg: str, source_line: str | None = None,
                 width: int = 1):
        self.path, self.line, self.col, self.msg = path, line, col, msg
        self.source_line = source_line
        self.width = max(1, width)
        super().__init__(f"{path}:{line}:{col}: error: {msg}")

    def render(self) -> str:
        """The one-line message, then the source line and a caret under the culprit (xDSL style)."""
        head = str(self)
        if self.source_line is None:
            return head
        caret = " " * (self.col - 1) + "^" * self.width
        return f"{head}\n{self.source_line}\n{caret}"


class VerifyError(TfcError):
    """The IR breaks an op's or the graph's invariants."""


class PassError(TfcError):
    """A pass failed; the message says which passes ran before it."""


class UnsupportedOpError(TfcError):
    """An ONNX op (or an op/dtype combination) tfc cannot compile."""


class FrontendError(TfcError):
    """A model file tfc cannot read: malformed, truncated, dynamic shapes, missing data."""


class BudgetError(TfcError):
    """The compiled model does not fit the target's flash or SRAM."""


class BuildError(TfcError):
    """The generated C failed to build or run (compiler missing, toolchain error)."""
