"""Identifiers: random, URL-safe, and validated where clients choose them."""

from __future__ import annotations

import re
import secrets

from holds.errors import InvalidRequest
from seatmap.text import control_character, text_problem

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_id(prefix: str, nbytes: int = 9) -> str:
    """``prefix`` + random base64url: 72 bits by default, never guessable across tenants."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def check_client_id(field: str, value: str) -> str:
    """Ids a client may choose end up in Redis keys: restrict them."""
    if not _CLIENT_ID.match(value):
        raise InvalidRequest(field, "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def check_name(field: str, value: str, max_chars: int = 200) -> str:
    """A human-readable name (an event's, a tenant's): 1-``max_chars`` characters,
    something visible, no control characters (``seatmap.text``)."""
    if not value or len(value) > max_chars:
        raise InvalidRequest(field, f"must be 1-{max_chars} characters")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidRequest(field, problem)
    return value


def check_label(field: str, value: str, max_chars: int = 200) -> str:
    """An optional free-text label (an API key's): at most ``max_chars``, no control characters."""
    if len(value) > max_chars:
        raise InvalidRequest(field, f"must be at most {max_chars} characters")
    bad = control_character(value)
    if bad is not None:
        raise InvalidRequest(field, f"must not contain control characters (found {bad})")
    return value
