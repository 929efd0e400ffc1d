"""Branding profiles: the rules each field keeps (docs/platform.md, Branding).

Every field is optional (""). When set:

- ``display_name``: 1-120 characters, no control characters;
- ``slug``: 3-40 of ``a-z 0-9 -`` (checked by the platform store, which also knows reserved words);
- ``custom_domain``: a host name of at least two labels, each 1-63 of ``a-z 0-9 -`` not starting or
  ending with ``-``, a top-level label of letters, at most 253 characters; upper case is lowered;
- ``logo_url``, ``favicon_url``: ``https://<host name>[:port][/path...]``, at most 2,048 characters,
  no spaces, quotes or angle brackets (they are put into pages as they are);
- ``primary_color``, ``accent_color``: ``#rrggbb`` (hex, lowered);
- ``support_email``, ``sender_email``: ``local@host name``, at most 254 characters;
- ``header_text``, ``footer_text``: at most 2,000 characters; line breaks and tabs, no other control
  characters.

:func:`check_branding` returns the fields normalised or raises :class:`InvalidBranding` naming the
first field at fault, in the order above.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from rules.errors import InvalidBranding

FIELDS: Final = (
    "display_name", "slug", "custom_domain", "logo_url", "favicon_url", "primary_color", "accent_color",
    "support_email", "sender_email", "header_text", "footer_text",
)  # fmt: skip
DISPLAY_NAME_MAX: Final = 120
TEXT_MAX: Final = 2_000
URL_MAX: Final = 2_048
EMAIL_MAX: Final = 254
DOMAIN_MAX: Final = 253

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TLD = re.compile(r"^[a-z]{2,63}$|^xn--[a-z0-9-]{1,59}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_URL = re.compile(r"^https://([^/?#:@]+)(?::([0-9]{1,5}))?([/?#][^\s\"'<>`]*)?$")
_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")


def _control(value: str, allowed: str = "") -> str | None:
    for ch in value:
        code = ord(ch)
        if (code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029)) and ch not in allowed:
            return f"U+{code:04X}"
    return None


def domain_problem(value: str) -> str | None:
    """Why ``value`` (lower case) is not a host name, or None."""
    if len(value) > DOMAIN_MAX:
        return f"at most {DOMAIN_MAX} characters"
    labels = value.split(".")
    if len(labels) < 2:
        return "a host name with a dot, e.g. tickets.example.com"
    for label in labels:
        if not _LABEL.match(label):
            return f"label {label!r}: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
    if not _TLD.match(labels[-1]):
        return f"top-level label {labels[-1]!r} must be letters"
    return None


def check_domain(field: str, value: str) -> str:
    value = value.lower()
    problem = domain_problem(value)
    if problem is not None:
        raise InvalidBranding(field, problem)
    return value


def check_url(field: str, value: str) -> str:
    if len(value) > URL_MAX:
        raise InvalidBranding(field, f"at most {URL_MAX} characters")
    match = _URL.match(value)
    if match is None:
        raise InvalidBranding(field, "an https:// URL with a host name, without spaces or quotes")
    host, port = match[1].lower(), match[2]
    problem = domain_problem(host)
    if problem is not None:
        raise InvalidBranding(field, f"host: {problem}")
    if port is not None and not 1 <= int(port) <= 65_535:
        raise InvalidBranding(field, "port must be 1-65535")
    return value


def check_email(field: str, value: str) -> str:
    if len(value) > EMAIL_MAX:
        raise InvalidBranding(field, f"at most {EMAIL_MAX} characters")
    local, at, host = value.rpartition("@")
    if not at or not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidBranding(field, "an e-mail address, e.g. support@example.com")
    problem = domain_problem(host.lower())
    if problem is not None:
        raise InvalidBranding(field, f"domain: {problem}")
    return f"{local}@{host.lower()}"


def check_color(field: str, value: str) -> str:
    if not _COLOR.match(value):
        raise InvalidBranding(field, "a colour as #rrggbb, e.g. #1a2b3c")
    return value.lower()


def check_text(field: str, value: str, max_chars: int, allowed: str = "") -> str:
    if len(value) > max_chars:
        raise InvalidBranding(field, f"at most {max_chars} characters")
    bad = _control(value, allowed)
    if bad is not None:
        raise InvalidBranding(field, f"must not contain control characters (found {bad})")
    return value


def check_branding(fields: Mapping[str, str]) -> dict[str, str]:
    """The non-empty ``fields`` normalised (empty ones kept empty); :class:`InvalidBranding` otherwise."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidBranding(sorted(unknown)[0], "not a branding field")
    out: dict[str, str] = {}
    for name in FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if value == "":
            out[name] = ""
            continue
        match name:
            case "display_name":
                if value.strip() != value or not value.strip():
                    raise InvalidBranding(name, "must not start or end with spaces")
                out[name] = check_text(name, value, DISPLAY_NAME_MAX)
            case "custom_domain":
                out[name] = check_domain(name, value)
            case "logo_url" | "favicon_url":
                out[name] = check_url(name, value)
            case "primary_color" | "accent_color":
                out[name] = check_color(name, value)
            case "support_email" | "sender_email":
                out[name] = check_email(name, value)
            case "header_text" | "footer_text":
                out[name] = check_text(name, value, TEXT_MAX, "\n\t")
            case _:  # slug: the platform store checks it
                out[name] = value
    return out
