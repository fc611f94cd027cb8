"""The user-facing error type: the CLI prints its message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, out-of-range value, missing data)."""
