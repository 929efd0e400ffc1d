"""Tenancy through a real server: keys, roles, and isolation between tenants."""

from __future__ import annotations

import grpc
import pytest
from seatwise.v1 import seatmap_pb2, tenancy_pb2

from tests.api import Api, field_violations


async def test_missing_key_is_unauthenticated(server: str) -> None:
    async with Api(server, None) as anon:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await anon.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("key", ["nonsense", "sw_unknown_secret", "sw_admin_wrong-secret"])
async def test_bad_keys_are_unauthenticated(server: str, key: str) -> None:
    async with Api(server, key) as api:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=api.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_organizer_sees_its_own_tenant(organizer: Api) -> None:
    me = await organizer.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=organizer.metadata)
    assert me.tenant_id == "acme"
    assert me.role == tenancy_pb2.ROLE_ORGANIZER


async def test_organizer_cannot_create_tenants(organizer: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(name="x"), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_organizer_cannot_name_another_tenant(admin: Api, organizer: Api) -> None:
    await admin.new_tenant_key("globex")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tenants.ListApiKeys(
            tenancy_pb2.ListApiKeysRequest(tenant_id="globex"), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with Api(organizer.target, organizer.metadata[0][1].removeprefix("Bearer "), "globex") as spoof:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await spoof.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=spoof.metadata)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_storefront_key_cannot_upload(organizer: Api) -> None:
    created = await organizer.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT, label="shop"),
        metadata=organizer.metadata,
    )
    async with Api(organizer.target, created.api_key) as shop:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.seatmaps.UploadSeatMap(
                seatmap_pb2.UploadSeatMapRequest(content=b"{}"), metadata=shop.metadata
            )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_organizer_cannot_mint_admin_keys(organizer: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_PLATFORM_ADMIN), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_organizer_mints_storefront_keys_only(organizer: Api, admin: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_ORGANIZER), metadata=organizer.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "storefront" in (err.value.details() or "")
    minted = await admin.tenants.CreateApiKey(  # the platform may
        tenancy_pb2.CreateApiKeyRequest(tenant_id="acme", role=tenancy_pb2.ROLE_ORGANIZER),
        metadata=admin.metadata,
    )
    assert minted.key.role == tenancy_pb2.ROLE_ORGANIZER


@pytest.mark.parametrize("name", ["Acme\x00", "Acme\nInc", "\u200b", " \u3164 ", "\u202eemca"])
async def test_tenant_names_without_control_characters_or_blanks(admin: Api, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id="t1", name=name), metadata=admin.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == ["name"]


async def test_key_labels_without_control_characters(organizer: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(role=tenancy_pb2.ROLE_STOREFRONT, label="shop\x1b[2J"),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_revoked_key_stops_working(admin: Api, server: str, stores: object) -> None:
    await admin.new_tenant_key("initech")
    created = await admin.tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(tenant_id="initech", role=tenancy_pb2.ROLE_STOREFRONT),
        metadata=admin.metadata,
    )
    await admin.tenants.RevokeApiKey(
        tenancy_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=admin.metadata
    )
    async with Api(server, created.api_key) as revoked:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await revoked.tenants.WhoAmI(tenancy_pb2.WhoAmIRequest(), metadata=revoked.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_duplicate_tenant_is_already_exists(admin: Api) -> None:
    await admin.new_tenant_key("dup")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id="dup", name="D"), metadata=admin.metadata
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_invalid_tenant_id_names_the_field(admin: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id="bad id!", name="x"), metadata=admin.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tenant_id" in err.value.details()


async def test_admin_must_name_tenant_for_tenant_data(admin: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.seatmaps.ListSeatMaps(seatmap_pb2.ListSeatMapsRequest(), metadata=admin.metadata)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "x-seatwise-tenant" in err.value.details()
