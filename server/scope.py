"""What the calling key may reach: one organizer, one platform.

The one rule for every servicer: an organizer's keys reach their own
organizer; a platform admin its platform and that platform's organizers; the
root admin everything. Anything else (another platform's organizer, another
platform) is ``NOT_FOUND``, the very answer an id that does not exist gets, so
ids cannot be probed. An organizer key naming another organizer is refused
before anything is looked up (``PERMISSION_DENIED``, whether it exists or not).
"""

from __future__ import annotations

from holds.errors import InvalidRequest, NotFound
from holds.platform.platforms import PlatformStore
from holds.platform.records import PlatformRecord
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord
from server.audit import note_target
from server.auth import PermissionDenied, Principal, current_principal


async def organizer(tenants: TenantStore, requested: str, field: str = "organizer_id") -> TenantRecord:
    """The organizer ``requested`` (empty: the caller's own, or the one acted on)."""
    p = current_principal()
    if not p.is_admin or (p.acting and requested in ("", p.tenant_id)):
        own = p.require_tenant()
        if requested and requested != own:
            raise PermissionDenied(f"this key may not act on tenant {requested!r}")
        record = await tenants.organizer(own)
        if record is None:
            raise NotFound("organizer", own)
        return record
    if not requested:
        requested = p.require_tenant()
    if len(requested) > 64:
        raise InvalidRequest(field, "must be at most 64 characters")
    record = await tenants.organizer(requested)
    if record is None or not may_reach_platform(p, record.platform_id):
        raise NotFound("organizer", requested)
    note_target(organizer_id=record.tenant_id, platform_id=record.platform_id)
    return record


def may_reach_platform(p: Principal, platform_id: str) -> bool:
    return p.is_root or (p.role == "platform_admin" and platform_id == p.platform_id and bool(platform_id))


def platform_id_of(requested: str) -> str:
    """The platform an operator names (a platform admin: its own when empty); unchecked."""
    p = current_principal()
    if not requested and p.role == "platform_admin":
        return p.platform_id
    return requested


async def platform(platforms: PlatformStore, requested: str) -> PlatformRecord:
    """The platform ``requested`` (a platform admin: its own when empty)."""
    p = current_principal()
    platform_id = platform_id_of(requested)
    if not platform_id:
        raise InvalidRequest("platform_id", "required")
    if len(platform_id) > 64 or not may_reach_platform(p, platform_id):
        raise NotFound("platform", platform_id)
    record = await platforms.get(platform_id)
    note_target(platform_id=record.platform_id)
    return record


def readable_platform_id(requested: str) -> str:
    """The platform whose public face the caller may read (checked for operators by
    :func:`platform`): an organizer's keys, their own organizer's platform only."""
    p = current_principal()
    if p.is_admin and not p.acting:
        return platform_id_of(requested)
    if not p.platform_id or (requested and requested != p.platform_id):
        raise NotFound("platform", requested or "(none: the organizer is under no platform)")
    return p.platform_id
