"""Platforms, self-service sign-up of organizers, suspension.

A platform's organizer index, slugs, admin keys, plans and audit log carry
``{p:<platform_id>}``; the platform record itself sits in the platform-wide
``sw:platforms`` hash. Sign-up claims the slug first (``HSETNX`` in the
platform's slot), then creates the organizer: a crash in between leaves a slug
that names no organizer, which the next sign-up with that slug takes over.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import msgspec

from holds import keys
from holds.errors import AlreadyExists, InvalidRequest, NotFound, PreconditionFailed
from holds.fresh import FreshCache
from holds.ids import check_client_id, check_label, check_name, new_id
from holds.platform.records import PlatformRecord, platform_decoder
from holds.platform.tenants import TenantStore
from holds.records import TenantRecord, json_encoder
from holds.redis_client import AnyRedis, wrap_errors
from rules.errors import InvalidPlan
from rules.fees import FeePlan, check_plan

plan_decoder = msgspec.json.Decoder(FeePlan)

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
SLUG_LENGTH = (3, 40)
# Slugs become URL paths and host names of the platform's sites: these would
# shadow its own pages or impersonate it.
RESERVED_SLUGS = frozenset({
    "admin", "administrator", "api", "app", "assets", "billing", "blog", "cdn", "checkout", "dashboard",
    "docs", "help", "login", "logout", "mail", "new", "oauth", "platform", "root", "seatwise", "settings",
    "signup", "sign-up", "static", "status", "support", "system", "tickets", "www",
})  # fmt: skip
COUNTRY = re.compile(r"^[A-Z]{2}$")
NAME_MAX = 120
MAX_GRACE_DAYS = 365


def check_slug(slug: str) -> str:
    low, high = SLUG_LENGTH
    if not low <= len(slug) <= high:
        raise InvalidRequest("slug", f"must be {low}-{high} characters")
    if not SLUG.match(slug):
        raise InvalidRequest(
            "slug", "only lowercase letters a-z, digits and '-', starting and ending with a letter or digit"
        )
    if "--" in slug:
        raise InvalidRequest("slug", "must not contain '--'")
    if slug in RESERVED_SLUGS:
        raise InvalidRequest("slug", f"{slug!r} is reserved")
    return slug


def check_country(country: str) -> str:
    if not COUNTRY.match(country):
        raise InvalidRequest("country", "an ISO 3166-1 alpha-2 code in capitals, e.g. 'DE'")
    return country


def check_organizer_name(name: str) -> str:
    check_name("name", name, NAME_MAX)
    if name.strip() != name:
        raise InvalidRequest("name", "must not start or end with spaces")
    return name


def _now_ms() -> int:
    return int(time.time() * 1000)


class PlatformStore:
    def __init__(
        self,
        client: AnyRedis,
        tenants: TenantStore,
        *,
        cache_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._r = client
        self._tenants = tenants
        self._cache: FreshCache[str, PlatformRecord | None] = FreshCache(cache_ttl_s, clock)
        # plans never change once created (create_plan is HSETNX): cached without expiry, bounded
        self._plans: dict[tuple[str, str], FeePlan] = {}

    async def create(
        self, platform_id: str, name: str, terms_version: str, public_sales_when_suspended: bool
    ) -> PlatformRecord:
        platform_id = check_client_id("platform_id", platform_id) if platform_id else new_id("p_", 6)
        check_name("name", name)
        check_label("terms_version", terms_version, 64)
        record = PlatformRecord(platform_id, name, _now_ms(), terms_version, public_sales_when_suspended)
        async with wrap_errors("create platform"):
            created = await self._r.hsetnx(keys.PLATFORMS, platform_id, json_encoder.encode(record))
        if not created:
            raise AlreadyExists("platform", platform_id)
        self._cache.drop(platform_id)
        return record

    async def get(self, platform_id: str) -> PlatformRecord:
        async with wrap_errors("get platform"):
            raw = await self._r.hget(keys.PLATFORMS, platform_id) if platform_id else None
        if raw is None:
            raise NotFound("platform", platform_id)
        return platform_decoder.decode(raw)

    @property
    def generation(self) -> int:
        """Bumped whenever this process drops a cached platform it changed."""
        return self._cache.generation

    async def cached_fresh(self, platform_id: str) -> tuple[PlatformRecord | None, float]:
        """For the wrapper: the platform's settings (None: no such platform), cached like
        keys, and the monotonic time that answer stops being fresh."""
        known = self._cache.get(platform_id)
        if known is not None:
            return known
        try:
            record: PlatformRecord | None = await self.get(platform_id)
        except NotFound:
            record = None
        return record, self._cache.put(platform_id, record)

    async def update(
        self,
        platform_id: str,
        *,
        terms_version: str | None,
        public_sales_when_suspended: bool | None,
        billing_grace_days: int | None = None,
    ) -> PlatformRecord:
        record = await self.get(platform_id)
        if billing_grace_days is not None:
            if not 0 <= billing_grace_days <= MAX_GRACE_DAYS:
                raise InvalidRequest("billing_grace_days", f"must be 0-{MAX_GRACE_DAYS} (0: never suspend)")
            record = msgspec.structs.replace(record, billing_grace_days=billing_grace_days)
        if terms_version is not None:
            check_label("terms_version", terms_version, 64)
            record = msgspec.structs.replace(record, terms_version=terms_version)
        if public_sales_when_suspended is not None:
            record = msgspec.structs.replace(record, public_sales_when_suspended=public_sales_when_suspended)
        async with wrap_errors("update platform"):
            await self._r.hset(keys.PLATFORMS, platform_id, json_encoder.encode(record))
        self._cache.drop(platform_id)
        return record

    async def list_platforms(self) -> list[PlatformRecord]:
        async with wrap_errors("list platforms"):
            raw = await self._r.hvals(keys.PLATFORMS)
        return sorted(
            (platform_decoder.decode(r) for r in raw), key=lambda p: (p.created_at_ms, p.platform_id)
        )

    async def sign_up(
        self, platform_id: str, name: str, slug: str, country: str, plan_id: str, accepted_terms: str
    ) -> TenantRecord:
        """A new organizer under the platform, able to sell at once."""
        platform = await self.get(platform_id)
        check_organizer_name(name)
        check_slug(slug)
        check_country(country)
        if platform.terms_version and accepted_terms != platform.terms_version:
            raise InvalidRequest(
                "accepted_terms_version",
                f"the platform's terms, version {platform.terms_version!r}, must be accepted",
            )
        if plan_id:
            async with wrap_errors("read plan"):
                known = await self._r.hexists(keys.platform_plans(platform_id), plan_id)
            if not known:
                raise InvalidRequest("plan_id", f"the platform has no plan {plan_id!r}")
        tenant_id = new_id("t_", 6)
        await self.claim_slug(platform_id, slug, tenant_id)
        return await self._tenants.create_tenant(
            tenant_id,
            name,
            platform_id=platform_id,
            slug=slug,
            country=country,
            plan_id=plan_id,
            terms_version=platform.terms_version,
        )

    async def claim_slug(self, platform_id: str, slug: str, tenant_id: str) -> None:
        """Claim ``slug`` within the platform for ``tenant_id`` (ALREADY_EXISTS when an organizer has it)."""
        slugs = keys.platform_slugs(platform_id)
        async with wrap_errors("claim slug"):
            if await self._r.hsetnx(slugs, slug, tenant_id):
                return
            holder = await self._r.hget(slugs, slug)
        holder_id = holder.decode() if isinstance(holder, bytes) else str(holder)
        if await self._tenants.organizer(holder_id) is not None:
            raise AlreadyExists("slug", slug)
        async with wrap_errors("claim slug"):  # left by a sign-up that never created its organizer
            await self._r.hset(slugs, slug, tenant_id)

    async def set_suspended(self, organizer: TenantRecord, suspended: bool, reason: str) -> TenantRecord:
        if suspended:
            check_label("reason", reason, 500)
            if not reason.strip():
                raise InvalidRequest("reason", "required: the organizer is told why")
            if organizer.suspended:
                raise PreconditionFailed(f"organizer {organizer.tenant_id!r} is already suspended")
        elif not organizer.suspended:
            raise PreconditionFailed(f"organizer {organizer.tenant_id!r} is not suspended")
        updated = msgspec.structs.replace(
            organizer,
            suspended=suspended,
            suspended_reason=reason if suspended else "",
            suspended_for_billing=False,  # by hand: billing never reinstates it
        )
        await self._tenants.put_tenant(updated)
        return updated

    # -- plans -----------------------------------------------------------------
    async def create_plan(self, platform_id: str, plan: FeePlan) -> FeePlan:
        """Store a new plan (immutable: an existing plan_id is ALREADY_EXISTS)."""
        check_client_id("plan.plan_id", plan.plan_id)
        try:
            check_plan(plan)
        except InvalidPlan as exc:
            raise InvalidRequest("plan", "; ".join(exc.problems)) from exc
        async with wrap_errors("create plan"):
            created = await self._r.hsetnx(
                keys.platform_plans(platform_id), plan.plan_id, json_encoder.encode(plan)
            )
        if not created:
            raise AlreadyExists("plan", plan.plan_id)
        return plan

    async def plan(self, platform_id: str, plan_id: str) -> FeePlan | None:
        """One plan (cached: plans are immutable); None when the platform has no such plan."""
        cached = self._plans.get((platform_id, plan_id))
        if cached is not None:
            return cached
        async with wrap_errors("read plan"):
            raw = await self._r.hget(keys.platform_plans(platform_id), plan_id)
        if raw is None:
            return None
        if len(self._plans) >= 10_000:
            self._plans.clear()
        plan = self._plans[(platform_id, plan_id)] = plan_decoder.decode(raw)
        return plan

    async def organizer_plan(self, tenant_id: str) -> FeePlan | None:
        """The plan the organizer is on now (None: no plan, or an organizer outside platforms).

        The organizer's record is read through the tenants' short cache, so a change
        of plan applies to sales within its TTL."""
        organizer = await self._tenants.organizer(tenant_id)
        if organizer is None or not organizer.plan_id or not organizer.platform_id:
            return None
        return await self.plan(organizer.platform_id, organizer.plan_id)

    async def list_plans(self, platform_id: str) -> list[FeePlan]:
        async with wrap_errors("list plans"):
            raw = await self._r.hvals(keys.platform_plans(platform_id))
        return sorted((plan_decoder.decode(r) for r in raw), key=lambda p: p.plan_id)
