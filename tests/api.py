"""A typed async test client: stubs of every service with one key's metadata."""

from __future__ import annotations

from types import TracebackType

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from seatwise.v1 import (
    access_pb2_grpc,
    channels_pb2_grpc,
    events_pb2_grpc,
    offers_pb2_grpc,
    platform_pb2_grpc,
    sales_pb2_grpc,
    seasons_pb2_grpc,
    seatmap_pb2_grpc,
    session_pb2_grpc,
    tenancy_pb2,
    tenancy_pb2_grpc,
)

from server.auth import TENANT_HEADER


class Api:
    def __init__(self, target: str, api_key: str | None, tenant: str = "") -> None:
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        )
        self.metadata: list[tuple[str, str]] = []
        if api_key is not None:
            self.metadata.append(("authorization", f"Bearer {api_key}"))
        if tenant:
            self.metadata.append((TENANT_HEADER, tenant))
        self.seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(self.channel)
        self.tenants = tenancy_pb2_grpc.TenantServiceStub(self.channel)
        self.events = events_pb2_grpc.EventServiceStub(self.channel)
        self.holds = sales_pb2_grpc.HoldServiceStub(self.channel)
        self.orders = sales_pb2_grpc.OrderServiceStub(self.channel)
        self.sessions = session_pb2_grpc.SalesServiceStub(self.channel)
        self.tickets = access_pb2_grpc.TicketServiceStub(self.channel)
        self.access = access_pb2_grpc.AccessServiceStub(self.channel)
        self.platforms = platform_pb2_grpc.PlatformServiceStub(self.channel)
        self.offers = offers_pb2_grpc.OfferServiceStub(self.channel)
        self.seasons = seasons_pb2_grpc.SeasonServiceStub(self.channel)
        self.channels = channels_pb2_grpc.ChannelServiceStub(self.channel)
        self.target = target

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object | TracebackType | None) -> None:
        await self.channel.close()

    async def new_tenant_key(self, tenant_id: str, role: int = tenancy_pb2.ROLE_ORGANIZER) -> str:
        await self.tenants.CreateTenant(
            tenancy_pb2.CreateTenantRequest(tenant_id=tenant_id, name=tenant_id.title()),
            metadata=self.metadata,
        )
        created = await self.tenants.CreateApiKey(
            tenancy_pb2.CreateApiKeyRequest(tenant_id=tenant_id, role=role), metadata=self.metadata
        )
        return created.api_key


def status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the error carries no rich status"
    return status


def without_request_info(status: status_pb2.Status) -> status_pb2.Status:
    """``status`` less its RequestInfo detail (each call has its own request id)."""
    out = status_pb2.Status()
    out.CopyFrom(status)
    del out.details[:]
    out.details.extend(d for d in status.details if not d.Is(error_details_pb2.RequestInfo.DESCRIPTOR))
    return out


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    out = []
    for detail in status_of(error).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            out += [(v.field, v.description) for v in bad.field_violations]
    return out


def precondition_subjects(error: grpc.aio.AioRpcError) -> list[str]:
    out = []
    for detail in status_of(error).details:
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            out += [v.subject for v in failure.violations]
    return out
