"""The model error type: unknown or unavailable model names, bad overrides, bad datasets."""

from __future__ import annotations

from core.errors import UserError


class ModelError(UserError, ValueError):
    """Bad model request (the message is one line and names the fault)."""
