"""Platform records on both topologies: sign-up claims a slug in the platform's
slot, suspension is written and read back, the audit log pages newest first."""

from __future__ import annotations

import pytest

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, PreconditionFailed
from holds.platform.audit import AuditFilter, AuditLog
from holds.platform.platforms import PlatformStore
from holds.platform.records import AuditEntry
from holds.platform.tenants import TenantStore
from holds.redis_client import AnyRedis


@pytest.fixture
def platforms(redis_client: AnyRedis) -> PlatformStore:
    return PlatformStore(redis_client, TenantStore(redis_client))


async def test_sign_up_and_slugs(platforms: PlatformStore, redis_client: AnyRedis) -> None:
    await platforms.create("p1", "P1", "v1", False)
    org = await platforms.sign_up("p1", "Fair Tickets", "fair-tickets", "DE", "", "v1")
    assert (org.platform_id, org.slug, org.terms_version) == ("p1", "fair-tickets", "v1")
    with pytest.raises(AlreadyExists):
        await platforms.sign_up("p1", "Other", "fair-tickets", "DE", "", "v1")
    with pytest.raises(InvalidRequest) as err:
        await platforms.sign_up("p1", "Other", "www", "DE", "", "v1")
    assert err.value.field == "slug"
    # a slug left by a sign-up that never created its organizer is taken over
    await redis_client.hset(keys.platform_slugs("p1"), "orphan-slug", "t_never")
    taken = await platforms.sign_up("p1", "Orphan", "orphan-slug", "FR", "", "v1")
    assert taken.slug == "orphan-slug"
    listed = await platforms._tenants.list_tenants("p1")
    assert [o.tenant_id for o in listed] == [org.tenant_id, taken.tenant_id]


async def test_suspension_round_trip(platforms: PlatformStore) -> None:
    await platforms.create("p1", "P1", "", False)
    org = await platforms.sign_up("p1", "Fair", "fair", "DE", "", "")
    suspended = await platforms.set_suspended(org, True, "unpaid")
    assert (await platforms._tenants.get_tenant(org.tenant_id)).suspended_reason == "unpaid"
    with pytest.raises(PreconditionFailed):
        await platforms.set_suspended(suspended, True, "again")
    with pytest.raises(InvalidRequest):
        await platforms.set_suspended(org, True, " ")
    back = await platforms.set_suspended(suspended, False, "")
    assert not back.suspended


async def test_audit_pages_newest_first(redis_client: AnyRedis) -> None:
    log = AuditLog(redis_client)
    for i in range(7):
        await log.append(
            AuditEntry(i, f"k{i % 2}", "organizer", "S/M", "OK", organizer_id="t1", platform_id="p1")
        )
    page, token = await log.page(keys.tenant_audit("t1"), AuditFilter(actor_key_id="k0"), 2, "")
    assert [e.at_ms for e in page] == [6, 4]
    page, token = await log.page(keys.tenant_audit("t1"), AuditFilter(actor_key_id="k0"), 2, token)
    assert [e.at_ms for e in page] == [2, 0]
    rest, _ = await log.page(keys.platform_audit("p1"), AuditFilter(), 50, "")
    assert len(rest) == 7
