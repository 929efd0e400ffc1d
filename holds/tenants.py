"""Tenants and their API keys.

A key is ``sw_<key_id>_<secret>``; only sha256(secret) is stored, so a leaked
Redis dump does not leak usable keys. ``authenticate`` is called on every RPC,
so verified keys are cached in-process for ``cache_ttl_s``: a revocation takes
effect within that time on every server process (documented in docs/api.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import msgspec

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, NotFound
from holds.ids import check_client_id, check_label, check_name, new_id
from holds.records import ApiKeyRecord, RoleName, TenantRecord, api_key_decoder, json_encoder, tenant_decoder
from holds.redis_client import AnyRedis, wrap_errors

KEY_PREFIX = "sw_"


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now_ms() -> int:
    return int(time.time() * 1000)


class TenantStore:
    def __init__(self, client: AnyRedis, *, cache_ttl_s: float = 5.0) -> None:
        self._r = client
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    # -- tenants ---------------------------------------------------------------
    async def create_tenant(self, tenant_id: str, name: str) -> TenantRecord:
        tenant_id = check_client_id("tenant_id", tenant_id) if tenant_id else new_id("t_", 6)
        check_name("name", name)
        record = TenantRecord(tenant_id, name, _now_ms())
        async with wrap_errors("create tenant"):
            created = await self._r.hsetnx(keys.TENANTS, tenant_id, json_encoder.encode(record))
        if not created:
            raise AlreadyExists("tenant", tenant_id)
        return record

    async def get_tenant(self, tenant_id: str) -> TenantRecord:
        async with wrap_errors("get tenant"):
            raw = await self._r.hget(keys.TENANTS, tenant_id)
        if raw is None:
            raise NotFound("tenant", tenant_id)
        return tenant_decoder.decode(raw)

    async def list_tenants(self) -> list[TenantRecord]:
        async with wrap_errors("list tenants"):
            raw = await self._r.hvals(keys.TENANTS)
        records = [tenant_decoder.decode(r) for r in raw]
        return sorted(records, key=lambda t: (t.created_at_ms, t.tenant_id))

    # -- keys ------------------------------------------------------------------
    async def create_key(self, tenant_id: str, role: RoleName, label: str) -> tuple[ApiKeyRecord, str]:
        """A new key; returns the record and the secret key string (shown once)."""
        check_label("label", label)
        if role != "platform_admin":
            await self.get_tenant(tenant_id)
        key_id = new_id("k", 9).replace("_", "x").replace("-", "y")
        secret = secrets.token_urlsafe(24)
        record = ApiKeyRecord(key_id, tenant_id, role, label, _hash_secret(secret), _now_ms())
        async with wrap_errors("create api key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(record))
            await self._r.sadd(keys.tenant_keys_index(tenant_id), key_id)
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    async def put_bootstrap_key(self, api_key: str) -> ApiKeyRecord:
        """Register the configured platform-admin key (idempotent, at startup)."""
        key_id, secret = self.split_key(api_key)
        record = ApiKeyRecord(key_id, "", "platform_admin", "bootstrap", _hash_secret(secret), 0)
        async with wrap_errors("register bootstrap key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(record))
        self._cache.pop(key_id, None)
        return record

    async def revoke_key(self, key_id: str, tenant_id: str | None) -> ApiKeyRecord:
        """Revoke; ``tenant_id`` restricts to that tenant's keys (None: any key)."""
        record = await self._get_key(key_id)
        if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
            raise NotFound("api key", key_id)
        revoked = msgspec.structs.replace(record, revoked=True)
        async with wrap_errors("revoke api key"):
            await self._r.hset(keys.API_KEYS, key_id, json_encoder.encode(revoked))
        self._cache.pop(key_id, None)
        return revoked

    async def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        async with wrap_errors("list api keys"):
            key_ids = sorted(await self._r.smembers(keys.tenant_keys_index(tenant_id)))
            raw = await self._r.hmget(keys.API_KEYS, key_ids) if key_ids else []
        return [api_key_decoder.decode(r) for r in raw if r is not None]

    @staticmethod
    def split_key(api_key: str) -> tuple[str, str]:
        if not api_key.startswith(KEY_PREFIX) or api_key.count("_") < 2:
            raise InvalidRequest("authorization", "malformed API key (expected sw_<id>_<secret>)")
        key_id, _, secret = api_key.removeprefix(KEY_PREFIX).partition("_")
        if not key_id or not secret:
            raise InvalidRequest("authorization", "malformed API key (expected sw_<id>_<secret>)")
        return key_id, secret

    async def authenticate(self, api_key: str) -> ApiKeyRecord | None:
        """The key's record if the key is valid and not revoked, else None."""
        try:
            key_id, secret = self.split_key(api_key)
        except InvalidRequest:
            return None
        record = await self._get_key(key_id)
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(record.secret_sha256, _hash_secret(secret)):
            return None
        return record

    async def _get_key(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with wrap_errors("read api key"):
            raw = await self._r.hget(keys.API_KEYS, key_id)
        record = api_key_decoder.decode(raw) if raw is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: unknown key ids must not grow memory
        self._cache[key_id] = (now + self._cache_ttl_s, record)
        return record
