"""The genotype error type: bad genotype data, with the file and the fault in one line."""

from __future__ import annotations

from core.errors import UserError


class GenotypeError(UserError, ValueError):
    """A malformed or unknown genotype (the message names the file, when there is one)."""
