"""The search's error type: bad search input."""

from core.errors import UserError


class SearchError(UserError, ValueError):
    """Bad search input (out-of-range option, unknown preset, mismatched resume state)."""
