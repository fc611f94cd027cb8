"""The user-facing error base: the CLI prints its message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, out-of-range value, missing data).

    Each package derives its own error from it (``GenotypeError``, ``ModelError``,
    ``SearchError``), so the CLI catches one type.
    """


def first_line(err: BaseException) -> str:
    """The first non-empty line of ``err``'s text (its type name when it has none); a
    ``KeyError``'s quotes are dropped. Every one-line error message quotes a cause through this."""
    text = str(err).strip()
    if isinstance(err, KeyError) and text[:1] in ("'", '"') and text[-1:] == text[:1]:
        text = text[1:-1]
    return text.splitlines()[0].strip() if text else type(err).__name__


def with_type(err: BaseException) -> str:
    """``TypeName: first line`` (the type name alone when ``err`` has no text): a failure
    recorded as a result row or sent between processes."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
