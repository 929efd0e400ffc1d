"""seatwise.v1.TenantService: tenants and API keys."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import tenancy_pb2, tenancy_pb2_grpc

from holds.errors import InvalidRequest
from holds.records import ApiKeyRecord, RoleName, TenantRecord
from server.auth import ADMIN, ORGANIZER, SALES, PermissionDenied, current_principal
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.servicers import Context

ROLE_TO_PROTO: dict[RoleName, tenancy_pb2.Role.ValueType] = {
    "platform_admin": tenancy_pb2.ROLE_PLATFORM_ADMIN,
    "organizer": tenancy_pb2.ROLE_ORGANIZER,
    "storefront": tenancy_pb2.ROLE_STOREFRONT,
    "door": tenancy_pb2.ROLE_DOOR,
}
PROTO_TO_ROLE = {v: k for k, v in ROLE_TO_PROTO.items()}


def timestamp_ms(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def tenant_pb(record: TenantRecord) -> tenancy_pb2.Tenant:
    return tenancy_pb2.Tenant(
        tenant_id=record.tenant_id, name=record.name, created_at=timestamp_ms(record.created_at_ms)
    )


def key_pb(record: ApiKeyRecord) -> tenancy_pb2.ApiKeyInfo:
    return tenancy_pb2.ApiKeyInfo(
        key_id=record.key_id,
        tenant_id=record.tenant_id,
        role=ROLE_TO_PROTO[record.role],
        label=record.label,
        created_at=timestamp_ms(record.created_at_ms),
        revoked=record.revoked,
    )


class TenantServicer(tenancy_pb2_grpc.TenantServiceServicer):
    def __init__(self, stores: Stores) -> None:
        self._tenants = stores.tenants

    async def CreateTenant(
        self, request: tenancy_pb2.CreateTenantRequest, context: Context
    ) -> tenancy_pb2.CreateTenantResponse:
        record = await self._tenants.create_tenant(request.tenant_id, request.name)
        return tenancy_pb2.CreateTenantResponse(tenant=tenant_pb(record))

    async def GetTenant(
        self, request: tenancy_pb2.GetTenantRequest, context: Context
    ) -> tenancy_pb2.GetTenantResponse:
        tenant_id = _target_tenant(request.tenant_id)
        return tenancy_pb2.GetTenantResponse(tenant=tenant_pb(await self._tenants.get_tenant(tenant_id)))

    async def ListTenants(
        self, request: tenancy_pb2.ListTenantsRequest, context: Context
    ) -> tenancy_pb2.ListTenantsResponse:
        offset, limit = page_bounds(request.page_size, request.page_token)
        records = await self._tenants.list_tenants()
        page = records[offset : offset + limit]
        more = len(records) > offset + limit
        return tenancy_pb2.ListTenantsResponse(
            tenants=[tenant_pb(r) for r in page], next_page_token=page_token_after(offset, limit, more)
        )

    async def CreateApiKey(
        self, request: tenancy_pb2.CreateApiKeyRequest, context: Context
    ) -> tenancy_pb2.CreateApiKeyResponse:
        principal = current_principal()
        role = PROTO_TO_ROLE.get(request.role)
        if role is None:
            raise InvalidRequest(
                "role", "must be ROLE_ORGANIZER, ROLE_STOREFRONT, ROLE_DOOR or ROLE_PLATFORM_ADMIN"
            )
        if not principal.is_admin and role not in ("storefront", "door"):
            # an organizer issues keys for its storefronts and door scanners; new organizer keys
            # come from the platform
            raise PermissionDenied("organizer keys may create storefront and door keys only")
        tenant_id = "" if role == "platform_admin" else _target_tenant(request.tenant_id)
        record, secret = await self._tenants.create_key(tenant_id, role, request.label)
        return tenancy_pb2.CreateApiKeyResponse(key=key_pb(record), api_key=secret)

    async def RevokeApiKey(
        self, request: tenancy_pb2.RevokeApiKeyRequest, context: Context
    ) -> tenancy_pb2.RevokeApiKeyResponse:
        principal = current_principal()
        if not request.key_id:
            raise InvalidRequest("key_id", "required")
        scope = None if principal.is_admin else principal.require_tenant()
        return tenancy_pb2.RevokeApiKeyResponse(
            key=key_pb(await self._tenants.revoke_key(request.key_id, scope))
        )

    async def ListApiKeys(
        self, request: tenancy_pb2.ListApiKeysRequest, context: Context
    ) -> tenancy_pb2.ListApiKeysResponse:
        tenant_id = _target_tenant(request.tenant_id)
        return tenancy_pb2.ListApiKeysResponse(
            keys=[key_pb(k) for k in await self._tenants.list_keys(tenant_id)]
        )

    async def WhoAmI(
        self, request: tenancy_pb2.WhoAmIRequest, context: Context
    ) -> tenancy_pb2.WhoAmIResponse:
        p = current_principal()
        return tenancy_pb2.WhoAmIResponse(tenant_id=p.tenant_id, role=ROLE_TO_PROTO[p.role], key_id=p.key_id)


def _target_tenant(requested: str) -> str:
    """An organizer reaches only its own tenant; an admin any tenant it names."""
    principal = current_principal()
    if principal.is_admin:
        return requested or principal.require_tenant()
    own = principal.require_tenant()
    if requested and requested != own:
        raise PermissionDenied(f"this key may not act on tenant {requested!r}")
    return own


SERVICE = ServiceDeclaration(
    descriptor=tenancy_pb2.DESCRIPTOR.services_by_name["TenantService"],
    add_to_server=tenancy_pb2_grpc.add_TenantServiceServicer_to_server,
    factory=TenantServicer,
    methods={
        "CreateTenant": MethodRule(ADMIN),
        "GetTenant": MethodRule(ORGANIZER),
        "ListTenants": MethodRule(ADMIN),
        "CreateApiKey": MethodRule(ORGANIZER),
        "RevokeApiKey": MethodRule(ORGANIZER),
        "ListApiKeys": MethodRule(ORGANIZER),
        "WhoAmI": MethodRule(SALES),
    },
)
