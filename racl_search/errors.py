"""The search's user-facing error (``racl_search`` cannot import ``bench.errors``)."""


class SearchError(ValueError):
    """Bad search input (out-of-range option, unknown preset, mismatched resume state)."""
