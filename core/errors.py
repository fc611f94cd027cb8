"""The user-facing error base: the CLI prints its message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, out-of-range value, missing data).

    Each package derives its own error from it (``GenotypeError``, ``ModelError``,
    ``SearchError``), so the CLI catches one type.
    """
