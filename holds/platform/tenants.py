"""Organizers (tenants) and API keys.

A key is ``sw_<key_id>_<secret>``; only sha256(secret) is stored, so a leaked
Redis dump does not leak usable keys, and the secret is compared in constant
time (``hmac.compare_digest``). ``authenticate`` is called on every RPC, so
verified keys are cached in-process for ``cache_ttl_s``: a revocation takes
effect within that time on every server process (documented in docs/api.md).
The wrapper also reads the calling organizer's record on every call (its
platform, whether it is suspended) through the same short cache
(:meth:`TenantStore.organizer`).

Records written before platforms are read through ``holds.platform.migration``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, NotFound
from holds.fresh import FreshCache
from holds.ids import check_client_id, check_label, check_name, new_id
from holds.platform.migration import upgrade_key, upgrade_tenant
from holds.records import (
    RECORD_SCHEMA,
    ApiKeyRecord,
    RoleName,
    TenantRecord,
    api_key_decoder,
    json_encoder,
    tenant_decoder,
)
from holds.redis_client import AnyRedis, wrap_errors

KEY_PREFIX = "sw_"
OPERATOR_ROLES: frozenset[RoleName] = frozenset({"root_admin", "platform_admin"})


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def decode_tenant(raw: bytes | str) -> TenantRecord:
    return upgrade_tenant(tenant_decoder.decode(raw))


def decode_key(raw: bytes | str) -> ApiKeyRecord:
    return upgrade_key(api_key_decoder.decode(raw))


class TenantStore:
    def __init__(
        self, client: AnyRedis, *, cache_ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._r = client
        self._clock = clock
        # key id -> record (None: unknown), verified on every call
        self._keys: FreshCache[str, ApiKeyRecord | None] = FreshCache(cache_ttl_s, clock)
        # organizer id -> record (None: unknown), as the wrapper needs it per call
        self._organizers: FreshCache[str, TenantRecord | None] = FreshCache(cache_ttl_s, clock)

    @property
    def generation(self) -> int:
        """Bumped whenever this process drops a cached key or organizer it changed."""
        return self._keys.generation + self._organizers.generation

    # -- tenants (organizers) --------------------------------------------------
    async def create_tenant(
        self,
        tenant_id: str,
        name: str,
        *,
        platform_id: str = "",
        slug: str = "",
        country: str = "",
        plan_id: str = "",
        terms_version: str = "",
    ) -> TenantRecord:
        tenant_id = check_client_id("tenant_id", tenant_id) if tenant_id else new_id("t_", 6)
        check_name("name", name)
        record = TenantRecord(
            tenant_id,
            name,
            _now_ms(),
            platform_id=platform_id,
            slug=slug,
            country=country,
            plan_id=plan_id,
            terms_version=terms_version,
            schema=RECORD_SCHEMA,
        )
        async with wrap_errors("create tenant"):
            created = await self._r.hsetnx(keys.TENANTS, tenant_id, json_encoder.encode(record))
            if created and platform_id:
                await self._r.zadd(keys.platform_organizers(platform_id), {tenant_id: record.created_at_ms})
        if not created:
            raise AlreadyExists("tenant", tenant_id)
        self._organizers.drop(tenant_id)
        return record

    async def get_tenant(self, tenant_id: str) -> TenantRecord:
        async with wrap_errors("get tenant"):
            raw = await self._r.hget(keys.TENANTS, tenant_id)
        if raw is None:
            raise NotFound("tenant", tenant_id)
        return decode_tenant(raw)

    async def put_tenant(self, record: TenantRecord) -> None:
        """Write an existing organizer's record again (suspension, plan)."""
        async with wrap_errors("update tenant"):
            await self._r.hset(keys.TENANTS, record.tenant_id, json_encoder.encode(record))
        self._organizers.drop(record.tenant_id)

    async def organizer(self, tenant_id: str) -> TenantRecord | None:
        """The organizer's record, cached for ``cache_ttl_s`` (None: no such organizer)."""
        return (await self.organizer_fresh(tenant_id))[0]

    async def organizer_fresh(self, tenant_id: str) -> tuple[TenantRecord | None, float]:
        """:meth:`organizer`, and the monotonic time that answer stops being fresh."""
        cached = self._organizers.get(tenant_id)
        if cached is not None:
            return cached
        async with wrap_errors("read tenant"):
            raw = await self._r.hget(keys.TENANTS, tenant_id)
        record = decode_tenant(raw) if raw is not None else None
        return record, self._organizers.put(tenant_id, record)

    async def list_tenants(self, platform_id: str | None = None) -> list[TenantRecord]:
        """Every organizer (None), or the organizers of one platform."""
        async with wrap_errors("list tenants"):
            if platform_id is None:
                raw = await self._r.hvals(keys.TENANTS)
            else:
                ids = await self._r.zrange(keys.platform_organizers(platform_id), 0, -1)
                raw = await self._r.hmget(keys.TENANTS, ids) if ids else []
        records = [decode_tenant(r) for r in raw if r is not None]
        if platform_id is not None:
            records = [r for r in records if r.platform_id == platform_id]
        return sorted(records, key=lambda t: (t.created_at_ms, t.tenant_id))

    # -- keys ------------------------------------------------------------------
    async def create_key(
        self,
        tenant_id: str,
        role: RoleName,
        label: str,
        *,
        platform_id: str = "",
        expires_at_ms: int = 0,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key; returns the record and the secret key string (shown once).

        Root-admin keys name nothing; platform-admin keys name their platform;
        every other role names its organizer (and, copied, the organizer's platform).
        """
        check_label("label", label)
        if expires_at_ms < 0:
            raise InvalidRequest("expires_at", "must not be negative")
        if role == "root_admin":
            tenant_id, platform_id = "", ""
        elif role == "platform_admin":
            if not platform_id:
                raise InvalidRequest("platform_id", "a platform-admin key names its platform")
            tenant_id = ""
        else:
            platform_id = (await self.get_tenant(tenant_id)).platform_id
        key_id = new_id("k", 9).replace("_", "x").replace("-", "y")
        secret = secrets.token_urlsafe(24)
        record = ApiKeyRecord(
            key_id,
            tenant_id,
            role,
            label,
            _hash_secret(secret),
            _now_ms(),
            platform_id=platform_id,
            expires_at_ms=expires_at_ms,
            schema=RECORD_SCHEMA,
        )
        index = self._index_of(record)
        async with wrap_errors("create api key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(record))
            if index:
                await self._r.sadd(index, key_id)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    @staticmethod
    def _index_of(record: ApiKeyRecord) -> str:
        if record.role == "platform_admin":
            return keys.platform_keys_index(record.platform_id)
        if record.tenant_id:
            return keys.tenant_keys_index(record.tenant_id)
        return ""  # root-admin keys are listed nowhere

    async def put_bootstrap_key(self, api_key: str) -> ApiKeyRecord:
        """Register the configured root-admin key (idempotent, at startup)."""
        key_id, secret = self.split_key(api_key)
        record = ApiKeyRecord(
            key_id, "", "root_admin", "bootstrap", _hash_secret(secret), 0, schema=RECORD_SCHEMA
        )
        async with wrap_errors("register bootstrap key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(record))
        self._keys.drop(key_id)
        return record

    async def get_key(self, key_id: str) -> ApiKeyRecord:
        record = await self._get_key(key_id, fresh=True)
        if record is None:
            raise NotFound("api key", key_id)
        return record

    async def revoke_key(self, key_id: str, tenant_id: str | None) -> ApiKeyRecord:
        """Revoke; ``tenant_id`` restricts to that tenant's keys (None: any key)."""
        record = await self._get_key(key_id, fresh=True)
        if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
            raise NotFound("api key", key_id)
        revoked = msgspec.structs.replace(record, revoked=True)
        async with wrap_errors("revoke api key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(revoked))
        self._keys.drop(key_id)
        return revoked

    async def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        return await self._list(keys.tenant_keys_index(tenant_id))

    async def list_platform_keys(self, platform_id: str) -> list[ApiKeyRecord]:
        return await self._list(keys.platform_keys_index(platform_id))

    async def _list(self, index: str) -> list[ApiKeyRecord]:
        async with wrap_errors("list api keys"):
            key_ids = sorted(await self._r.smembers(index))
            raw = await self._r.hmget(keys.API_KEYS, key_ids) if key_ids else []
        return [decode_key(r) for r in raw if r is not None]

    @staticmethod
    def split_key(api_key: str) -> tuple[str, str]:
        if not api_key.startswith(KEY_PREFIX) or api_key.count("_") < 2:
            raise InvalidRequest("authorization", "malformed API key (expected sw_<id>_<secret>)")
        key_id, _, secret = api_key.removeprefix(KEY_PREFIX).partition("_")
        if not key_id or not secret:
            raise InvalidRequest("authorization", "malformed API key (expected sw_<id>_<secret>)")
        return key_id, secret

    async def authenticate(self, api_key: str) -> ApiKeyRecord | None:
        """The key's record if the key is valid, not revoked and not expired, else None."""
        verified = await self.verify(api_key)
        return verified[0] if verified is not None else None

    async def verify(self, api_key: str, *, fresh: bool = False) -> tuple[ApiKeyRecord, float] | None:
        """:meth:`authenticate`, and the monotonic time that answer stops being fresh:
        when the cached record does, or the key expires, whichever is sooner. With
        ``fresh``, the record is read from Redis; one that changed since it was cached
        (revoked by another process) is dropped with what was derived from it."""
        try:
            key_id, secret = self.split_key(api_key)
        except InvalidRequest:
            return None
        if fresh:
            cached = self._keys.get(key_id)
            record, fresh_until = await self._get_key_fresh(key_id, fresh=True)
            if cached is not None and cached[0] != record:
                self._keys.drop(key_id)  # this process's kept principals go with it
                fresh_until = self._keys.put(key_id, record)
        else:
            record, fresh_until = await self._get_key_fresh(key_id)
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(record.secret_sha256, _hash_secret(secret)):
            return None
        if record.expires_at_ms:
            left_ms = record.expires_at_ms - _now_ms()
            if left_ms <= 0:
                return None
            fresh_until = min(fresh_until, self._clock() + left_ms / 1000)
        return record, fresh_until

    async def _get_key(self, key_id: str, *, fresh: bool = False) -> ApiKeyRecord | None:
        return (await self._get_key_fresh(key_id, fresh=fresh))[0]

    async def _get_key_fresh(self, key_id: str, *, fresh: bool = False) -> tuple[ApiKeyRecord | None, float]:
        cached = None if fresh else self._keys.get(key_id)
        if cached is not None:
            return cached
        async with wrap_errors("read api key"):
            raw = await self._r.hget(keys.API_KEYS, key_id)
        record = decode_key(raw) if raw is not None else None
        return record, self._keys.put(key_id, record)
