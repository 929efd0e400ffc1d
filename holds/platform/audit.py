"""The audit log: who did what, acting as whom, with what outcome.

An entry is appended to the log of the organizer it concerns (``{t:}`` slot),
to its platform's log (``{p:}`` slot), or, when it concerns neither, to the
root log: an organizer lists its own, a platform every entry of it and its
organizers. The logs are streams trimmed to about :data:`MAX_ENTRIES` each;
the two appends are separate commands (two slots), so a crash between them
can leave an entry in one log only.
"""

from __future__ import annotations

from dataclasses import dataclass

from holds import keys
from holds.errors import InvalidRequest
from holds.platform.records import AuditEntry, audit_decoder
from holds.records import json_encoder
from holds.redis_client import AnyRedis, wrap_errors

MAX_ENTRIES = 100_000
SCAN_CHUNK = 500
MAX_SCANNED = 20_000  # per page: a filtered page scans at most this many entries, then hands a token on


@dataclass(frozen=True)
class AuditFilter:
    organizer_id: str = ""
    method: str = ""  # the method's short name ("SuspendOrganizer") or "Service/Method"
    actor_key_id: str = ""
    since_ms: int = 0
    until_ms: int = 0  # exclusive; 0: no bound

    def matches(self, entry: AuditEntry) -> bool:
        if self.organizer_id and entry.organizer_id != self.organizer_id:
            return False
        if self.method and not (entry.method == self.method or entry.method.endswith("/" + self.method)):
            return False
        return not (self.actor_key_id and entry.actor_key_id != self.actor_key_id)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class AuditLog:
    def __init__(self, client: AnyRedis) -> None:
        self._r = client

    async def append(self, entry: AuditEntry) -> None:
        data = {"e": json_encoder.encode(entry)}
        logs = []
        if entry.organizer_id:
            logs.append(keys.tenant_audit(entry.organizer_id))
        if entry.platform_id:
            logs.append(keys.platform_audit(entry.platform_id))
        if not logs:
            logs.append(keys.ROOT_AUDIT)
        async with wrap_errors("append audit entry"):
            for log in logs:
                await self._r.xadd(log, data, maxlen=MAX_ENTRIES, approximate=True)

    async def page(
        self, log: str, where: AuditFilter, page_size: int, page_token: str
    ) -> tuple[list[AuditEntry], str]:
        """Newest first; the token is the stream id to continue below (exclusive)."""
        upper = "+"
        if where.until_ms:
            upper = f"({where.until_ms}-0"
        if page_token:
            if not _valid_id(page_token):
                raise InvalidRequest("page_token", "not a token this server issued")
            upper = f"({page_token}"
        lower = f"{where.since_ms}-0" if where.since_ms else "-"
        found: list[AuditEntry] = []
        scanned = 0
        last_id = ""
        async with wrap_errors("read audit log"):
            while len(found) < page_size and scanned < MAX_SCANNED:
                chunk = await self._r.xrevrange(log, max=upper, min=lower, count=SCAN_CHUNK)
                if not chunk:
                    return found, ""
                for entry_id, fields in chunk:
                    scanned += 1
                    last_id = _text(entry_id)
                    entry = audit_decoder.decode(fields[b"e"] if b"e" in fields else fields["e"])
                    if where.matches(entry):
                        found.append(entry)
                        if len(found) == page_size:
                            return found, last_id
                upper = f"({last_id}"
        return found, last_id


def _valid_id(token: str) -> bool:
    ms, sep, seq = token.partition("-")
    return (
        bool(sep) and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit() and len(token) <= 40
    )
