"""Records written before platforms keep working (holds/platform/migration.py).

``fixtures/v1_records.json`` is what the release before platforms wrote (its
``holds/tenants.py`` at commit bf00de3, run against a real Redis: the bootstrap
admin key, an extra admin key, two tenants, an organizer key, a storefront key,
a revoked key), copied verbatim from Redis, with the test keys' secrets.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from holds import keys
from holds.platform.tenants import TenantStore
from holds.records import RECORD_SCHEMA
from holds.redis_client import AnyRedis

V1 = json.loads((Path(__file__).parent / "fixtures" / "v1_records.json").read_text())


async def load_v1(redis: AnyRedis) -> dict[str, Any]:
    """Write the old records into Redis exactly as the old release left them."""
    await redis.hset(keys.TENANTS, mapping=V1["tenants"])
    await redis.hset(keys.API_KEYS, mapping=V1["apikeys"])
    for tenant_id, key_ids in V1["tenant_key_index"].items():
        await redis.sadd(keys.tenant_keys_index(tenant_id), *key_ids)
    return dict(V1["secrets"])


@pytest.fixture
async def store(redis_client: AnyRedis) -> TenantStore:
    return TenantStore(redis_client)


async def test_old_admin_keys_are_root_admins(redis_client: AnyRedis, store: TenantStore) -> None:
    secrets = await load_v1(redis_client)
    for name in ("admin", "bootstrap"):
        record = await store.authenticate(secrets[name])
        assert record is not None
        assert record.role == "root_admin"
        assert (record.tenant_id, record.platform_id) == ("", "")


async def test_old_organizer_and_storefront_keys_keep_their_tenant(
    redis_client: AnyRedis, store: TenantStore
) -> None:
    secrets = await load_v1(redis_client)
    organizer = await store.authenticate(secrets["organizer"])
    storefront = await store.authenticate(secrets["storefront"])
    assert organizer is not None
    assert storefront is not None
    assert (organizer.role, organizer.tenant_id, organizer.platform_id) == ("organizer", "acme", "")
    assert (storefront.role, storefront.tenant_id) == ("storefront", "acme")
    assert {k.key_id for k in await store.list_keys("acme")} == set(V1["tenant_key_index"]["acme"])


async def test_a_revoked_old_key_stays_revoked(redis_client: AnyRedis, store: TenantStore) -> None:
    await load_v1(redis_client)
    (revoked,) = await store.list_keys("globex")
    assert revoked.revoked


async def test_old_tenants_are_organizers_under_the_root(redis_client: AnyRedis, store: TenantStore) -> None:
    await load_v1(redis_client)
    acme = await store.get_tenant("acme")
    assert (acme.name, acme.platform_id, acme.suspended, acme.slug) == ("Acme Events", "", False, "")
    assert [t.tenant_id for t in await store.list_tenants()] == ["acme", "globex"]
    assert await store.list_tenants("p1") == []


async def test_an_old_record_written_again_is_written_in_the_new_schema(
    redis_client: AnyRedis, store: TenantStore
) -> None:
    secrets = await load_v1(redis_client)
    admin = await store.authenticate(secrets["admin"])
    assert admin is not None
    await store.revoke_key(admin.key_id, None)
    raw = json.loads(await redis_client.hget(keys.API_KEYS, admin.key_id))
    assert (raw["role"], raw["schema"], raw["revoked"]) == ("root_admin", RECORD_SCHEMA, True)
    assert await TenantStore(redis_client).authenticate(secrets["admin"]) is None


async def test_a_new_platform_admin_is_not_mistaken_for_an_old_one(
    redis_client: AnyRedis, store: TenantStore
) -> None:
    record, secret = await store.create_key("", "platform_admin", "ops", platform_id="p1")
    raw = json.loads(await redis_client.hget(keys.API_KEYS, record.key_id))
    assert (raw["role"], raw["schema"]) == ("platform_admin", RECORD_SCHEMA)
    read = await TenantStore(redis_client).authenticate(secret)
    assert read is not None
    assert (read.role, read.platform_id) == ("platform_admin", "p1")


async def test_expired_keys_are_refused(redis_client: AnyRedis, store: TenantStore) -> None:
    await store.create_tenant("acme", "Acme")
    record, secret = await store.create_key(
        "acme", "storefront", "", expires_at_ms=int(time.time() * 1000) + 50
    )
    assert await TenantStore(redis_client).authenticate(secret) is not None
    await asyncio.sleep(0.1)
    assert await TenantStore(redis_client).authenticate(secret) is None
    assert record.expires_at_ms > 0
