"""Branding profiles end to end: validation naming the field, custom domains unique
across the installation (also under concurrent claims), storefront keys of the
platform read them, other platforms' ids answer as nonexistent ones, changes audited."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from seatwise.v1 import platform_pb2, tenancy_pb2

from tests.api import Api, field_violations
from tests.server import test_platforms_api
from tests.server.test_platforms_api import World, _sign_up

world = test_platforms_api.world  # two platforms, an organizer of each

FULL = {
    "display_name": "Fair Tickets",
    "custom_domain": "Tickets.Fair.example",
    "logo_url": "https://cdn.fair.example/logo.svg",
    "favicon_url": "https://cdn.fair.example/favicon.ico",
    "primary_color": "#1A2B3C",
    "accent_color": "#ffcc00",
    "support_email": "help@fair.example",
    "sender_email": "no-reply@Fair.example",
    "header_text": "Welcome",
    "footer_text": "Fair Tickets GmbH\nBerlin",
}


async def _storefront(api: Api) -> str:
    created = await api.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT, label="shop"), metadata=api.metadata
    )
    return created.api_key


async def test_organizer_branding_is_set_validated_and_read_by_storefronts(world: World) -> None:
    updated = await world.org1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(**FULL),
        metadata=world.org1.metadata,  # type: ignore[arg-type]
    )
    b = updated.branding
    assert (b.custom_domain, b.primary_color, b.sender_email, b.slug) == (
        "tickets.fair.example", "#1a2b3c", "no-reply@fair.example", "fair-tickets",
    )  # fmt: skip
    assert b.footer_text == "Fair Tickets GmbH\nBerlin"
    assert b.updated_at.seconds > 0
    # a partial update keeps the other fields; an empty string clears one
    again = await world.org1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(header_text=""), metadata=world.org1.metadata
    )
    assert (again.branding.header_text, again.branding.display_name) == ("", "Fair Tickets")
    async with Api(world.server, await _storefront(world.org1)) as shop:
        got = await shop.platforms.GetBranding(platform_pb2.GetBrandingRequest(), metadata=shop.metadata)
        assert (got.organizer_id, got.platform_id) == (world.org1_id, "p1")
        assert got.branding.logo_url == FULL["logo_url"]
        # a storefront cannot change branding
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.platforms.UpdateBranding(
                platform_pb2.UpdateBrandingRequest(display_name="x"), metadata=shop.metadata
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"logo_url": "http://cdn.fair.example/logo.svg"}, "logo_url"),
        ({"logo_url": "https://localhost/logo.svg"}, "logo_url"),
        ({"favicon_url": "https://cdn.fair.example/a b.ico"}, "favicon_url"),
        ({"favicon_url": "javascript:alert(1)"}, "favicon_url"),
        ({"primary_color": "red"}, "primary_color"),
        ({"accent_color": "#12345"}, "accent_color"),
        ({"custom_domain": "fair"}, "custom_domain"),
        ({"custom_domain": "-fair.example"}, "custom_domain"),
        ({"custom_domain": "fair..example"}, "custom_domain"),
        ({"custom_domain": "fair.123"}, "custom_domain"),
        ({"support_email": "help"}, "support_email"),
        ({"sender_email": "a@b"}, "sender_email"),
        ({"display_name": "x" * 121}, "display_name"),
        ({"display_name": " Fair"}, "display_name"),
        ({"header_text": "x" * 2001}, "header_text"),
        ({"footer_text": "bell\x07"}, "footer_text"),
        ({"slug": "Fair_Tickets"}, "slug"),
        ({"slug": "admin"}, "slug"),
    ],
)
async def test_branding_is_validated_naming_the_field_and_changes_nothing(
    world: World, fields: dict[str, str], field: str
) -> None:
    before = await world.org1.platforms.GetBranding(
        platform_pb2.GetBrandingRequest(), metadata=world.org1.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.org1.platforms.UpdateBranding(
            platform_pb2.UpdateBrandingRequest(**({"primary_color": "#000000"} | fields)),  # type: ignore[arg-type]
            metadata=world.org1.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == [field]
    after = await world.org1.platforms.GetBranding(
        platform_pb2.GetBrandingRequest(), metadata=world.org1.metadata
    )
    assert after == before


async def test_custom_domains_are_unique_across_the_installation(world: World) -> None:
    await world.p1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(custom_domain="tickets.p1.example"), metadata=world.p1.metadata
    )
    for api in (world.org1, world.p2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.platforms.UpdateBranding(
                platform_pb2.UpdateBrandingRequest(custom_domain="TICKETS.p1.example"), metadata=api.metadata
            )
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # moving to another domain frees the old one
    await world.p1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(custom_domain="shop.p1.example"), metadata=world.p1.metadata
    )
    got = await world.p2.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(custom_domain="tickets.p1.example"), metadata=world.p2.metadata
    )
    assert got.branding.custom_domain == "tickets.p1.example"


async def test_concurrent_claims_of_one_domain_have_one_winner(world: World) -> None:
    others = [await _sign_up(world.p1, f"racer-{i}") for i in range(6)]
    apis = [Api(world.server, o.api_key) for o in others]
    try:
        results = await asyncio.gather(
            *(
                api.platforms.UpdateBranding(
                    platform_pb2.UpdateBrandingRequest(custom_domain="contested.example"),
                    metadata=api.metadata,
                )
                for api in apis
            ),
            return_exceptions=True,
        )
    finally:
        for api in apis:
            await api.channel.close()
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert len(lost) == 5
    assert {e.code() for e in lost} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_organizer_slug_changes_are_unique_within_the_platform(world: World) -> None:
    other = await _sign_up(world.p1, "second-hall")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.org1.platforms.UpdateBranding(
            platform_pb2.UpdateBrandingRequest(slug="second-hall"), metadata=world.org1.metadata
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    moved = await world.org1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(slug="fair-hall"), metadata=world.org1.metadata
    )
    assert moved.branding.slug == "fair-hall"
    got = await world.p1.platforms.GetOrganizer(
        platform_pb2.GetOrganizerRequest(organizer_id=world.org1_id), metadata=world.p1.metadata
    )
    assert got.organizer.slug == "fair-hall"
    await _sign_up(world.p1, "fair-tickets")  # the old slug is free again
    assert other.organizer.slug == "second-hall"


async def test_platform_branding_read_by_its_storefronts_only(world: World) -> None:
    await world.p1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(display_name="P One", slug="p-one"), metadata=world.p1.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:  # platform slugs are unique across platforms
        await world.p2.platforms.UpdateBranding(
            platform_pb2.UpdateBrandingRequest(slug="p-one"), metadata=world.p2.metadata
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    async with Api(world.server, await _storefront(world.org1)) as shop:
        got = await shop.platforms.GetBranding(
            platform_pb2.GetBrandingRequest(platform_id="p1"), metadata=shop.metadata
        )
        assert (got.platform_id, got.branding.display_name, got.branding.slug) == ("p1", "P One", "p-one")
        # another platform, another platform's organizer: the answers of ids that do not exist
        for request, details in (
            (platform_pb2.GetBrandingRequest(platform_id="p2"), "platform 'p2' not found"),
            (platform_pb2.GetBrandingRequest(platform_id="p9"), "platform 'p9' not found"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await shop.platforms.GetBranding(request, metadata=shop.metadata)
            assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, details)
        # other organizers' profiles reach storefronts through the hub; named directly, they are
        # refused before anything is looked up, whether they exist or not
        for organizer_id in (world.org2_id, "t_nonexistent"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await shop.platforms.GetBranding(
                    platform_pb2.GetBrandingRequest(organizer_id=organizer_id), metadata=shop.metadata
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # a platform admin: its organizers' profiles, not another platform's
    for organizer_id in (world.org2_id, "t_nonexistent"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.UpdateBranding(
                platform_pb2.UpdateBrandingRequest(organizer_id=organizer_id, display_name="x"),
                metadata=world.p1.metadata,
            )
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND, f"organizer {organizer_id!r} not found",
        )  # fmt: skip


async def test_branding_changes_are_audited(world: World) -> None:
    await world.p1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(organizer_id=world.org1_id, primary_color="#000000"),
        metadata=world.p1.metadata,
    )
    own = await world.org1.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(method="UpdateBranding"), metadata=world.org1.metadata
    )
    (entry,) = own.entries
    assert (entry.organizer_id, entry.platform_id, entry.outcome) == (world.org1_id, "p1", "OK")
    assert entry.actor_role == tenancy_pb2.ROLE_PLATFORM_ADMIN
