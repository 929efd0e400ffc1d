"""Opaque page tokens for List calls (an offset, base64-encoded so clients don't build them).

A token is only ever one this server could have issued: ``o:<offset>`` with an
offset of at most :data:`MAX_PAGE_OFFSET` (no listing is that long; a deeper
token would reach Redis as an index it refuses). Anything else is
``INVALID_ARGUMENT`` naming ``page_token``, before any store is asked.
"""

from __future__ import annotations

import base64
import binascii
import re

from holds.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_PAGE_OFFSET = 1_000_000
_TOKEN = re.compile(r"o:(0|[1-9][0-9]{0,6})")  # ASCII digits only: int() also takes "١", "1_0", " 1"


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) for a request; rejects negative sizes and forged tokens."""
    if page_size < 0:
        raise InvalidRequest("page_size", "must not be negative")
    limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return 0, limit
    if len(page_token) > 32:
        raise InvalidRequest("page_token", "not a token this server issued")
    try:
        decoded = base64.urlsafe_b64decode(page_token.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidRequest("page_token", "not a token this server issued") from exc
    match = _TOKEN.fullmatch(decoded)
    if match is None or int(match[1]) > MAX_PAGE_OFFSET:
        raise InvalidRequest("page_token", "not a token this server issued")
    return int(match[1]), limit


def page_token_after(offset: int, limit: int, more: bool) -> str:
    """The next page's token, or "" at the end (or past the deepest page a token may name)."""
    after = offset + limit
    if not more or after > MAX_PAGE_OFFSET:
        return ""
    return base64.urlsafe_b64encode(f"o:{after}".encode()).decode()
