"""seatwise.v1.TenantService: organizers (tenants) and API keys."""

from __future__ import annotations

import time

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc

from holds.errors import InvalidRequest, NotFound
from holds.records import ApiKeyRecord, RoleName, TenantRecord
from server import scope
from server.audit import note_target
from server.auth import (
    EVERY_ROLE,
    OPERATOR,
    ORGANIZER,
    PermissionDenied,
    Principal,
    current_principal,
)
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.servicers import Context
from server.servicers.convert import millis_of

ROLE_TO_PROTO: dict[RoleName, tenancy_pb2.Role.ValueType] = {
    "root_admin": tenancy_pb2.ROLE_ROOT_ADMIN,
    "platform_admin": tenancy_pb2.ROLE_PLATFORM_ADMIN,
    "organizer": tenancy_pb2.ROLE_ORGANIZER,
    "box_office": tenancy_pb2.ROLE_BOX_OFFICE,
    "door": tenancy_pb2.ROLE_DOOR,
    "storefront": tenancy_pb2.ROLE_STOREFRONT,
    "reporting": tenancy_pb2.ROLE_REPORTING,
}
PROTO_TO_ROLE = {v: k for k, v in ROLE_TO_PROTO.items()}
# the staff keys an organizer admin issues itself; organizer-admin keys come from its platform
STAFF_ROLES: frozenset[RoleName] = frozenset({"storefront", "box_office", "door", "reporting"})


def timestamp_ms(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def timestamp_field_ms(request: Message, field: str) -> int:
    """A request's timestamp in ms (0 when unset); out of range is INVALID_ARGUMENT naming it."""
    if not request.HasField(field):
        return 0
    value: Timestamp = getattr(request, field)
    return millis_of(value, field)


def tenant_pb(record: TenantRecord) -> tenancy_pb2.Tenant:
    return tenancy_pb2.Tenant(
        tenant_id=record.tenant_id,
        name=record.name,
        created_at=timestamp_ms(record.created_at_ms),
        platform_id=record.platform_id,
    )


def key_pb(record: ApiKeyRecord) -> tenancy_pb2.ApiKeyInfo:
    return tenancy_pb2.ApiKeyInfo(
        key_id=record.key_id,
        tenant_id=record.tenant_id,
        role=ROLE_TO_PROTO[record.role],
        label=record.label,
        created_at=timestamp_ms(record.created_at_ms),
        revoked=record.revoked,
        platform_id=record.platform_id,
        expires_at=timestamp_ms(record.expires_at_ms) if record.expires_at_ms else None,
    )


def may_manage_key(p: Principal, key: ApiKeyRecord) -> bool:
    """Root: any key; a platform admin: its platform's and its organizers'; else the organizer's own."""
    if p.is_root:
        return True
    if p.role == "platform_admin":
        return bool(key.platform_id) and key.platform_id == p.platform_id
    return bool(key.tenant_id) and key.tenant_id == p.tenant_id and key.role != "root_admin"


class TenantServicer(tenancy_pb2_grpc.TenantServiceServicer):
    def __init__(self, stores: Stores) -> None:
        self._tenants = stores.tenants
        self._platforms = stores.platforms

    async def CreateTenant(
        self, request: tenancy_pb2.CreateTenantRequest, context: Context
    ) -> tenancy_pb2.CreateTenantResponse:
        platform_id = scope.platform_id_of(request.platform_id)
        if platform_id:
            await scope.platform(self._platforms, platform_id)
        record = await self._tenants.create_tenant(request.tenant_id, request.name, platform_id=platform_id)
        note_target(organizer_id=record.tenant_id, platform_id=platform_id)
        return tenancy_pb2.CreateTenantResponse(tenant=tenant_pb(record))

    async def GetTenant(
        self, request: tenancy_pb2.GetTenantRequest, context: Context
    ) -> tenancy_pb2.GetTenantResponse:
        record = await scope.organizer(self._tenants, request.tenant_id, "tenant_id")
        return tenancy_pb2.GetTenantResponse(tenant=tenant_pb(record))

    async def ListTenants(
        self, request: tenancy_pb2.ListTenantsRequest, context: Context
    ) -> tenancy_pb2.ListTenantsResponse:
        offset, limit = page_bounds(request.page_size, request.page_token)
        p = current_principal()
        records = await self._tenants.list_tenants(None if p.is_root else p.platform_id)
        page = records[offset : offset + limit]
        more = len(records) > offset + limit
        return tenancy_pb2.ListTenantsResponse(
            tenants=[tenant_pb(r) for r in page], next_page_token=page_token_after(offset, limit, more)
        )

    async def CreateApiKey(
        self, request: tenancy_pb2.CreateApiKeyRequest, context: Context
    ) -> tenancy_pb2.CreateApiKeyResponse:
        p = current_principal()
        role = PROTO_TO_ROLE.get(request.role)
        if role is None:
            raise InvalidRequest("role", "must name a role (ROLE_ORGANIZER, ROLE_STOREFRONT, ...)")
        expires_at_ms = timestamp_field_ms(request, "expires_at")
        if request.HasField("expires_at") and expires_at_ms <= time.time() * 1000:
            raise InvalidRequest("expires_at", "must be in the future")
        if not p.is_admin and role not in STAFF_ROLES:
            # an organizer issues its staff's keys; organizer-admin keys come from its platform
            raise PermissionDenied(
                "organizer keys may create storefront, box office, door and reporting keys only"
            )
        if role == "root_admin" and not p.is_root:
            raise PermissionDenied("only the root admin may create root-admin keys")
        tenant_id, platform_id = "", ""
        if role == "platform_admin":
            platform_id = (await scope.platform(self._platforms, request.platform_id)).platform_id
        elif role != "root_admin":
            tenant_id = (await scope.organizer(self._tenants, request.tenant_id, "tenant_id")).tenant_id
        record, secret = await self._tenants.create_key(
            tenant_id, role, request.label, platform_id=platform_id, expires_at_ms=expires_at_ms
        )
        note_target(key_id=record.key_id)
        return tenancy_pb2.CreateApiKeyResponse(key=key_pb(record), api_key=secret)

    async def RevokeApiKey(
        self, request: tenancy_pb2.RevokeApiKeyRequest, context: Context
    ) -> tenancy_pb2.RevokeApiKeyResponse:
        if not request.key_id:
            raise InvalidRequest("key_id", "required")
        if len(request.key_id) > 64:
            raise NotFound("api key", request.key_id)
        try:
            record = await self._tenants.get_key(request.key_id)
        except NotFound:
            raise NotFound("api key", request.key_id) from None
        if not may_manage_key(current_principal(), record):
            raise NotFound("api key", request.key_id)
        note_target(organizer_id=record.tenant_id, platform_id=record.platform_id)
        return tenancy_pb2.RevokeApiKeyResponse(
            key=key_pb(await self._tenants.revoke_key(request.key_id, None))
        )

    async def ListApiKeys(
        self, request: tenancy_pb2.ListApiKeysRequest, context: Context
    ) -> tenancy_pb2.ListApiKeysResponse:
        p = current_principal()
        if request.platform_id and p.is_admin and not request.tenant_id:
            platform = await scope.platform(self._platforms, request.platform_id)
            records = await self._tenants.list_platform_keys(platform.platform_id)
        else:
            organizer = await scope.organizer(self._tenants, request.tenant_id, "tenant_id")
            records = await self._tenants.list_keys(organizer.tenant_id)
        return tenancy_pb2.ListApiKeysResponse(keys=[key_pb(k) for k in records])

    async def WhoAmI(
        self, request: tenancy_pb2.WhoAmIRequest, context: Context
    ) -> tenancy_pb2.WhoAmIResponse:
        p = current_principal()
        return tenancy_pb2.WhoAmIResponse(
            tenant_id=p.tenant_id,
            role=ROLE_TO_PROTO[p.role],
            key_id=p.key_id,
            platform_id=p.platform_id,
            acting=p.acting,
        )


SERVICE = ServiceDeclaration(
    descriptor=tenancy_pb2.DESCRIPTOR.services_by_name["TenantService"],
    add_to_server=tenancy_pb2_grpc.add_TenantServiceServicer_to_server,
    factory=TenantServicer,
    methods={
        "CreateTenant": MethodRule(OPERATOR, audited=True),
        "GetTenant": MethodRule(ORGANIZER),
        "ListTenants": MethodRule(OPERATOR),
        "CreateApiKey": MethodRule(ORGANIZER, audited=True),
        "RevokeApiKey": MethodRule(ORGANIZER, audited=True),
        "ListApiKeys": MethodRule(ORGANIZER),
        "WhoAmI": MethodRule(EVERY_ROLE),
    },
)
