"""Identifiers: random, URL-safe, and validated where clients choose them."""

from __future__ import annotations

import re
import secrets

from holds.errors import InvalidRequest

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_id(prefix: str, nbytes: int = 9) -> str:
    """``prefix`` + random base64url: 72 bits by default, never guessable across tenants."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def check_client_id(field: str, value: str) -> str:
    """Ids a client may choose end up in Redis keys: restrict them."""
    if not _CLIENT_ID.match(value):
        raise InvalidRequest(field, "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value
