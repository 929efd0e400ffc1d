"""Unique names on both topologies: a domain claim left by a crash (claimed, profile
never written) is taken over only once it is abandoned, and by one claimer; the
plan-usage script applies the same thresholds as rules.fees."""

from __future__ import annotations

import time

import pytest

from holds import keys
from holds.errors import AlreadyExists, PlanLimitExceeded
from holds.platform.branding import ABANDONED_AFTER_MS, BrandingStore
from holds.platform.notifications import PlanUsage, period_of
from holds.platform.platforms import PlatformStore
from holds.platform.tenants import TenantStore
from holds.redis_client import AnyRedis
from holds.scripts import ScriptRegistry
from rules.fees import threshold_crossed


@pytest.fixture
def branding(redis_client: AnyRedis) -> BrandingStore:
    tenants = TenantStore(redis_client)
    return BrandingStore(
        redis_client, ScriptRegistry(redis_client), tenants, PlatformStore(redis_client, tenants)
    )


async def test_a_crashed_claim_is_taken_over_once_abandoned(
    branding: BrandingStore, redis_client: AnyRedis
) -> None:
    now = int(time.time() * 1000)
    # p-crashed claimed the domain a moment ago and has not written its profile yet: still its
    await redis_client.hset(keys.DOMAINS, "shop.example", f"p:p-crashed {now}")
    with pytest.raises(AlreadyExists):
        await branding.update_platform("p-new", {"custom_domain": "shop.example"})
    # a minute later the claim is abandoned (its profile never named it): taken over
    await redis_client.hset(keys.DOMAINS, "shop.example", f"p:p-crashed {now - ABANDONED_AFTER_MS - 1}")
    got = await branding.update_platform("p-new", {"custom_domain": "shop.example"})
    assert got.custom_domain == "shop.example"
    assert await branding.owner_of_domain("SHOP.example") == "p:p-new"
    # a claim whose holder's profile uses the domain is never taken over, however old
    await redis_client.hset(keys.DOMAINS, "shop.example", f"p:p-new {now - 10 * ABANDONED_AFTER_MS}")
    with pytest.raises(AlreadyExists):
        await branding.update_platform("p-other", {"custom_domain": "shop.example"})


async def test_usage_script_thresholds_agree_with_the_rules(redis_client: AnyRedis) -> None:
    usage = PlanUsage(redis_client, ScriptRegistry(redis_client))
    limit, used = 7, 0
    for step in (1, 2, 1, 1, 1, 1):
        await usage.add("t-usage", "", "tickets_per_month", step, limit)
        expected = threshold_crossed(used, used + step, limit)
        used += step
        notes = await usage.page(keys.tenant_notifications("t-usage"), 100, "")
        assert (
            len(notes[0]) == sum(len(threshold_crossed(u, u + 1, limit)) for u in range(used))
            or expected == ()
        )
    assert await usage.used("t-usage", "tickets_per_month") == 7
    with pytest.raises(PlanLimitExceeded) as err:
        await usage.add("t-usage", "", "tickets_per_month", 1, limit)
    assert (err.value.limit, err.value.value, err.value.usage) == ("tickets_per_month", 7, 7)
    notes, _ = await usage.page(keys.tenant_notifications("t-usage"), 100, "")
    assert [(n.kind, n.usage, n.period) for n in reversed(notes)] == [
        ("limit_80", 6, period_of(notes[0].at_ms)),
        ("limit_100", 7, period_of(notes[0].at_ms)),
    ]
