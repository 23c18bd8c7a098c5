"""The one exception type that reaches a person as a single line."""

from __future__ import annotations


class SearchError(Exception):
    """Bad input or environment: the message says what is wrong and what to do.

    The CLI prints it as one line and exits non-zero; it is never a bug, so no
    traceback is shown.
    """
