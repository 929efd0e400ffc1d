"""An organizer's ticket signing keys, kept per tenant (``{t:<tenant>}`` slot).

One Redis hash per tenant (``holds/keys.py`` ``ticket_signing_keys``) holds the
published :class:`~rules.tickets.KeyRing` (public keys and their states), a
version for compare-and-set updates (``ticket_keys_put.lua``) and each key's
32-byte private seed. A tenant's first key is made on first need (the first
token asked for) or by :meth:`TicketKeyStore.rotate`.

Seeds at rest: with a server secret (``SEATWISE_TICKET_KEY_SECRET``, a Fernet
key) each seed is stored Fernet-encrypted (AES-128-CBC + HMAC-SHA256), so a
copy of Redis's data (an RDB or AOF file, a backup, a replica's disk) does not
give away the power to mint tickets without the secret too. It does not protect
against someone who can run commands on Redis *and* reach a server process's
configuration, nor against writes: whoever can write Redis can replace a
tenant's ring. Without a secret, seeds are stored in the clear, marked so,
and the server logs a warning at startup. Seeds are never logged and no RPC
returns one (:class:`~rules.tickets.SigningKey`'s repr omits it).

This belongs with the platform and account records (``holds/platform/``, see
docs/architecture.md) once that package exists.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken

from holds import keys
from holds.errors import InvalidRequest, NotFound, StoreError
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from rules.errors import KeyRingError, UnknownKey
from rules.tickets import KeyRing, SigningKey, rotate

_FERNET = "fernet:"
_PLAIN = "plain:"
_CAS_ATTEMPTS = 8


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


class TicketKeyStore:
    def __init__(self, client: AnyRedis, scripts: ScriptRegistry, secret: str | None = None) -> None:
        self._r = client
        self._scripts = scripts
        self._fernet = Fernet(secret.encode()) if secret else None

    @property
    def encrypts(self) -> bool:
        return self._fernet is not None

    def _seal(self, seed: bytes) -> str:
        if self._fernet is None:
            return _PLAIN + base64.urlsafe_b64encode(seed).decode()
        return _FERNET + self._fernet.encrypt(seed).decode()

    def _open(self, stored: str) -> bytes:
        if stored.startswith(_PLAIN):
            return base64.urlsafe_b64decode(stored.removeprefix(_PLAIN))
        if self._fernet is None:
            raise StoreError("ticket keys are encrypted: set SEATWISE_TICKET_KEY_SECRET")
        try:
            return self._fernet.decrypt(stored.removeprefix(_FERNET).encode())
        except InvalidToken as exc:
            raise StoreError("ticket key does not decrypt with SEATWISE_TICKET_KEY_SECRET") from exc

    async def _read(self, tenant_id: str) -> tuple[KeyRing, str]:
        async with wrap_errors("read ticket keys"):
            ring, version = await self._r.hmget(keys.ticket_signing_keys(tenant_id), ["ring", "version"])
        return (KeyRing.decode(ring) if ring else KeyRing()), _text(version)

    async def ring(self, tenant_id: str) -> KeyRing:
        """The tenant's published keys (empty before its first key)."""
        return (await self._read(tenant_id))[0]

    async def _update(
        self, tenant_id: str, change: Callable[[KeyRing], tuple[KeyRing, SigningKey | None]]
    ) -> KeyRing:
        for _ in range(_CAS_ATTEMPTS):
            ring, version = await self._read(tenant_id)
            new_ring, key = change(ring)
            if new_ring is ring:
                return ring
            args: list[str | bytes] = [version, new_ring.encode(), "", ""]
            if key is not None:
                args[2:] = [f"seed:{key.key_id}", self._seal(key.seed())]
            reply = await self._scripts.ticket_keys_put([keys.ticket_signing_keys(tenant_id)], args)
            match reply:
                case [Reply.OK, _]:
                    return new_ring
                case [Reply.KEYRING_CHANGED]:
                    continue
            raise StoreError(f"ticket_keys_put returned an unknown result {reply!r}")
        raise StoreError("ticket keys changed under every attempt; retry")

    async def rotate(self, tenant_id: str) -> KeyRing:
        """A new active key; the former active key is retired (its tickets still verify)."""
        return await self._update(tenant_id, lambda ring: rotate(ring, int(time.time())))

    async def revoke(self, tenant_id: str, key_id: str) -> KeyRing:
        """Tickets signed with ``key_id`` no longer verify. Revoking the active key leaves
        the tenant without one: the next token asked for makes a new key."""

        def change(ring: KeyRing) -> tuple[KeyRing, SigningKey | None]:
            try:
                if ring.get(key_id).state == "revoked":
                    return ring, None
                return ring.revoke(key_id), None
            except UnknownKey:
                raise NotFound("ticket key", key_id) from None
            except KeyRingError as exc:  # pragma: no cover - revoke only fails on unknown ids
                raise InvalidRequest("key_id", str(exc)) from exc

        if not key_id:
            raise InvalidRequest("key_id", "required")
        return await self._update(tenant_id, change)

    async def active(self, tenant_id: str) -> SigningKey:
        """The key new tickets are signed with, made on first need."""
        ring = await self.ring(tenant_id)
        if ring.active is None:
            ring = await self._update(
                tenant_id, lambda r: (r, None) if r.active else rotate(r, int(time.time()))
            )
        active = ring.active
        assert active is not None
        return await self.signing_key(tenant_id, active.key_id, ring)

    async def signing_key(self, tenant_id: str, key_id: str, ring: KeyRing | None = None) -> SigningKey:
        ring = ring or await self.ring(tenant_id)
        public = ring.get(key_id)
        async with wrap_errors("read ticket key"):
            stored = await self._r.hget(keys.ticket_signing_keys(tenant_id), f"seed:{key_id}")
        if stored is None:
            raise StoreError(f"ticket key {key_id} has no private part")
        key = SigningKey.from_seed(key_id, self._open(_text(stored)), public.created_at)
        if key.public().public_key != public.public_key:
            raise StoreError(f"ticket key {key_id} does not match its published public key")
        return key
