"""Branding profiles of platforms and organizers (docs/platform.md, Branding).

A profile is one JSON string in its owner's slot (``{p:}`` or ``{t:}``). A
custom domain is unique across the installation: it is claimed in the
installation-wide ``sw:domains`` hash first (``claim_unique.lua``, compare and
set), then the profile is written, then the previous domain is released. A
crash after the claim leaves a domain that names an owner whose profile does
not use it; the next claim of that domain by anyone sees that and takes it
over (atomically: two such claimers cannot both win). Organizers' slugs are
claimed in their platform's slug hash as sign-up claims them; platforms'
branding slugs in ``sw:platform-slugs`` like domains.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, PreconditionFailed, StoreError
from holds.platform.platforms import PlatformStore, check_slug
from holds.platform.records import Branding, branding_decoder
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord, json_encoder
from holds.redis_client import AnyRedis, wrap_errors
from holds.replies import Reply
from holds.scripts import ScriptRegistry
from rules.branding import check_branding
from rules.errors import InvalidBranding

ABANDONED_AFTER_MS = 60_000
_StaleCheck = Callable[[str, str], Awaitable[bool]]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class BrandingStore:
    def __init__(
        self, client: AnyRedis, scripts: ScriptRegistry, tenants: TenantStore, platforms: PlatformStore
    ) -> None:
        self._r = client
        self._scripts = scripts
        self._tenants = tenants
        self._platforms = platforms

    async def _read(self, key: str) -> Branding:
        async with wrap_errors("read branding"):
            raw = await self._r.get(key)
        return branding_decoder.decode(raw) if raw is not None else Branding()

    async def platform(self, platform_id: str) -> Branding:
        return await self._read(keys.platform_branding(platform_id))

    async def organizer(self, organizer: TenantRecord) -> Branding:
        """The organizer's profile; its slug is always the organizer's own."""
        branding = await self._read(keys.tenant_branding(organizer.tenant_id))
        return msgspec.structs.replace(branding, slug=organizer.slug)

    async def organizers(self, organizers: list[TenantRecord]) -> dict[str, Branding]:
        """Several organizers' profiles, one command each (they live in many slots)."""
        if not organizers:
            return {}
        async with wrap_errors("read branding"), self._r.pipeline(transaction=False) as pipe:
            for o in organizers:
                pipe.get(keys.tenant_branding(o.tenant_id))
            raws = await pipe.execute()
        return {
            o.tenant_id: msgspec.structs.replace(
                branding_decoder.decode(raw) if raw is not None else Branding(), slug=o.slug
            )
            for o, raw in zip(organizers, raws, strict=True)
        }

    async def update_platform(self, platform_id: str, changes: Mapping[str, str]) -> Branding:
        current = await self.platform(platform_id)
        fields = _checked(changes)
        owner = f"p:{platform_id}"
        slug = fields.get("slug")
        if slug and slug != current.slug:
            check_slug(slug)
            await self._claim(keys.PLATFORM_SLUGS, slug, platform_id, "slug", self._platform_slug_stale)
        updated = await self._write(keys.platform_branding(platform_id), owner, current, fields)
        if slug is not None and current.slug and slug != current.slug:
            await self._release(keys.PLATFORM_SLUGS, current.slug, platform_id)
        return updated

    async def update_organizer(self, organizer: TenantRecord, changes: Mapping[str, str]) -> Branding:
        current = await self.organizer(organizer)
        fields = _checked(changes)
        if set(fields) - {"slug"}:
            plan = await self._platforms.organizer_plan(organizer.tenant_id)
            if plan is not None and not plan.features.own_branding:
                raise PreconditionFailed(
                    f"the organizer's plan {plan.plan_id!r} does not include its own branding "
                    "(its storefronts show the platform's); only the slug can change",
                    subject=sorted(set(fields) - {"slug"})[0],
                )
        slug = fields.pop("slug", None)
        if slug is not None and slug != organizer.slug:
            if not organizer.platform_id:
                raise InvalidRequest("slug", "only an organizer of a platform has a slug")
            check_slug(slug)
            await self._platforms.claim_slug(organizer.platform_id, slug, organizer.tenant_id)
            old = organizer.slug
            organizer = msgspec.structs.replace(organizer, slug=slug)
            await self._tenants.put_tenant(organizer)
            if old:
                await self._release(keys.platform_slugs(organizer.platform_id), old, organizer.tenant_id)
        updated = await self._write(
            keys.tenant_branding(organizer.tenant_id), f"t:{organizer.tenant_id}", current, fields
        )
        return msgspec.structs.replace(updated, slug=organizer.slug)

    async def _write(self, key: str, owner: str, current: Branding, fields: dict[str, str]) -> Branding:
        domain = fields.get("custom_domain")
        if domain and domain != current.custom_domain:
            await self._claim(keys.DOMAINS, domain, owner, "custom_domain", self._domain_stale)
        updated = msgspec.structs.replace(current, **fields, updated_at_ms=_now_ms())
        async with wrap_errors("write branding"):
            await self._r.set(key, json_encoder.encode(updated))
        if domain is not None and current.custom_domain and domain != current.custom_domain:
            await self._release(keys.DOMAINS, current.custom_domain, owner)
        return updated

    async def _claim(self, names: str, name: str, owner: str, field: str, stale_check: _StaleCheck) -> None:
        stale = ""
        for _ in range(2):
            reply = await self._scripts.claim_unique([names], ["claim", name, owner, stale, _now_ms()])
            match reply:
                case Reply.OK:
                    return
                case [Reply.CLAIM_TAKEN, holder]:
                    value = _text(holder)
                    holder_id, _, claimed = value.partition(" ")
                    abandoned = claimed.isdigit() and int(claimed) < _now_ms() - ABANDONED_AFTER_MS
                    if stale or not abandoned or not await stale_check(holder_id, name):
                        raise AlreadyExists(field.replace("_", " "), name)
                    stale = value
                case _:
                    raise StoreError(f"claim_unique returned an unknown result {reply!r}")
        raise AlreadyExists(field.replace("_", " "), name)

    async def _release(self, names: str, name: str, owner: str) -> None:
        """Free ``name`` if ``owner`` still holds it."""
        reply = await self._scripts.claim_unique([names], ["release", name, owner, "", _now_ms()])
        if reply != Reply.OK:
            raise StoreError(f"claim_unique returned an unknown result {reply!r}")

    # A claim is abandoned when, a minute after it was made, its holder's profile
    # does not use the name (a crash between the claim and the profile's write).
    async def _domain_stale(self, holder: str, domain: str) -> bool:
        kind, _, owner_id = holder.partition(":")
        key = keys.platform_branding(owner_id) if kind == "p" else keys.tenant_branding(owner_id)
        return (await self._read(key)).custom_domain != domain

    async def _platform_slug_stale(self, holder: str, slug: str) -> bool:
        return (await self.platform(holder)).slug != slug

    async def owner_of_domain(self, domain: str) -> str | None:
        """ "p:<platform id>" or "t:<organizer id>", or None."""
        async with wrap_errors("read domain"):
            raw = await self._r.hget(keys.DOMAINS, domain.lower())
        return _text(raw).partition(" ")[0] if raw is not None else None


def _checked(changes: Mapping[str, str]) -> dict[str, str]:
    try:
        return check_branding(changes)
    except InvalidBranding as exc:
        raise InvalidRequest(exc.field, exc.problem) from exc
