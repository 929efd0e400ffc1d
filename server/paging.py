"""Opaque page tokens for List calls (an offset, base64-encoded so clients don't build them)."""

from __future__ import annotations

import base64
import binascii

from holds.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_bounds(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) for a request; rejects negative sizes and forged tokens."""
    if page_size < 0:
        raise InvalidRequest("page_size", "must not be negative")
    limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return 0, limit
    try:
        offset = int(base64.urlsafe_b64decode(page_token.encode()).decode().removeprefix("o:"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("page_token", "not a token this server issued") from exc
    if offset < 0:
        raise InvalidRequest("page_token", "not a token this server issued")
    return offset, limit


def page_token_after(offset: int, limit: int, more: bool) -> str:
    return base64.urlsafe_b64encode(f"o:{offset + limit}".encode()).decode() if more else ""
