"""Writing the audit log from the wrapper (``server/wrapping.py``).

Every call made by an operator acting as an organizer (``x-seatwise-tenant``)
and every call of a method declared ``audited`` (changes of keys, plans,
suspension, platform settings) is written, whatever its outcome. A servicer
names what it verified its call concerns with :func:`note_target` (an
organizer, a platform); the entry goes to those logs. Target ids are the
request's ``*_id`` fields; no secret is ever written (tokens and keys are
not ``*_id`` fields).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from holds.platform.audit import AuditLog
from holds.platform.records import AuditEntry
from server.auth import Principal

log = structlog.get_logger("seatwise.audit")


@dataclass
class _Target:
    organizer_id: str = ""
    platform_id: str = ""
    ids: dict[str, str] = field(default_factory=dict)


_target: contextvars.ContextVar[_Target | None] = contextvars.ContextVar(
    "seatwise_audit_target", default=None
)


def begin() -> None:
    _target.set(_Target())


def note_target(*, organizer_id: str = "", platform_id: str = "", **ids: str) -> None:
    """What the current call concerns, once the servicer has checked the caller may reach it."""
    target = _target.get()
    if target is None:
        return
    if organizer_id:
        target.organizer_id = organizer_id
    if platform_id:
        target.platform_id = platform_id
    target.ids.update({k: v for k, v in ids.items() if v})


def request_ids(request: Any) -> dict[str, str]:
    """The request's top-level string fields named ``*_id`` (never tokens or secrets)."""
    out: dict[str, str] = {}
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return out
    for f in descriptor.fields:
        if f.name.endswith("_id"):
            value = getattr(request, f.name)
            if isinstance(value, str) and value:
                out[f.name] = value[:128]
    return out


async def write(audit: AuditLog, method: str, principal: Principal, request: Any, outcome: str) -> None:
    """Never raises: the call's outcome stands; a failed write is logged (no secrets in it)."""
    try:
        await _write(audit, method, principal, request, outcome)
    except Exception:
        log.exception("audit.write_failed", method=method, key_id=principal.key_id)


async def _write(audit: AuditLog, method: str, principal: Principal, request: Any, outcome: str) -> None:
    target = _target.get() or _Target()
    organizer = target.organizer_id or principal.tenant_id
    platform = target.platform_id or principal.platform_id
    entry = AuditEntry(
        at_ms=int(time.time() * 1000),
        actor_key_id=principal.key_id,
        actor_role=principal.role,
        method=method.lstrip("/").removeprefix("seatwise.v1."),
        outcome=outcome,
        actor_platform_id=principal.platform_id if principal.role == "platform_admin" else "",
        organizer_id=organizer,
        platform_id=platform,
        acting=principal.acting,
        targets={**request_ids(request), **target.ids},
    )
    await audit.append(entry)
