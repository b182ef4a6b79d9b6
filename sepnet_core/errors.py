"""The package's exception family.

User-facing errors derive from :class:`SepNetError` so that the CLI can print them as one line and
exit non-zero without a traceback. Argument errors stay the built-in ``ValueError``/``TypeError``
(they are programming errors); ``SepNetInputError`` subclasses ``ValueError`` so that both views hold.
"""

from __future__ import annotations


class SepNetError(Exception):
    """Base class of errors the command line reports as one line (no traceback)."""


class SepNetInputError(SepNetError, ValueError):
    """An input file or folder is unreadable or violates a documented rule; the message names it."""


class CheckpointError(SepNetError, ValueError):
    """A checkpoint is unsafe, corrupt, of another model, or of a newer format."""
