"""seatwise.v1.ChannelService: thin translation onto holds.channels (channels and allocations).

Organizers define an event's channels, allocate seats and GA places to them and
close them; storefronts name a channel's access on their holds (the sales
servicer converts it with :func:`channel_access`). docs/selling.md.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import channels_pb2, channels_pb2_grpc

from holds.channels import ChannelAccess, ChannelDef, ChannelKind, Channels
from holds.errors import InvalidRequest
from server.auth import ORGANIZER, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context

_KIND_OF: dict[int, ChannelKind] = {
    channels_pb2.CHANNEL_KIND_UNSPECIFIED: "storefront",
    channels_pb2.CHANNEL_KIND_STOREFRONT: "storefront",
    channels_pb2.CHANNEL_KIND_BOX_OFFICE: "box_office",
}
_KIND_PB: dict[str, channels_pb2.ChannelKind.ValueType] = {
    "storefront": channels_pb2.CHANNEL_KIND_STOREFRONT,
    "box_office": channels_pb2.CHANNEL_KIND_BOX_OFFICE,
}


def channel_access(access: channels_pb2.ChannelAccess) -> ChannelAccess:
    """A hold request's channel access (none when no channel is named)."""
    return ChannelAccess(access.channel_id, access.access_code)


def _ts(ms: int) -> Timestamp | None:
    if not ms:
        return None
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def channel_pb(c: ChannelDef) -> channels_pb2.Channel:
    return channels_pb2.Channel(
        channel_id=c.id, name=c.name, kind=_KIND_PB[c.kind], access_code=c.access_code,
        closed=c.status == "closed", created_at=_ts(c.created_ms), closed_at=_ts(c.closed_ms),
    )  # fmt: skip


class ChannelServicer(channels_pb2_grpc.ChannelServiceServicer):
    def __init__(self, channels: Channels) -> None:
        self._channels = channels

    async def DefineChannel(
        self, request: channels_pb2.DefineChannelRequest, context: Context
    ) -> channels_pb2.Channel:
        if not request.HasField("channel"):
            raise InvalidRequest("channel", "required")
        c = request.channel
        if c.kind not in _KIND_OF:
            raise InvalidRequest("channel.kind", "storefront or box office")
        definition = ChannelDef(
            id=c.channel_id, name=c.name, kind=_KIND_OF[c.kind], access_code=c.access_code
        )
        tenant = current_principal().require_tenant()
        return channel_pb(await self._channels.define(tenant, request.event_id, definition))

    async def AllocateToChannel(
        self, request: channels_pb2.AllocateToChannelRequest, context: Context
    ) -> channels_pb2.AllocateToChannelResponse:
        tenant = current_principal().require_tenant()
        done = await self._channels.allocate(
            tenant,
            request.event_id,
            request.channel_id,
            list(request.seat_ids),
            dict(request.general_admission),
            sections=list(request.section_ids),
            rows=list(request.rows),
        )
        return channels_pb2.AllocateToChannelResponse(
            seats_allocated=done.seats, places_reserved=done.places, sequence=done.seq
        )

    async def CloseChannel(
        self, request: channels_pb2.CloseChannelRequest, context: Context
    ) -> channels_pb2.CloseChannelResponse:
        tenant = current_principal().require_tenant()
        closed = await self._channels.close(tenant, request.event_id, request.channel_id)
        return channels_pb2.CloseChannelResponse(
            channel=channel_pb(closed.channel), seats_returned=closed.seats, places_returned=closed.places,
            sequence=closed.seq, already_closed=closed.already,
        )  # fmt: skip

    async def ListChannels(
        self, request: channels_pb2.ListChannelsRequest, context: Context
    ) -> channels_pb2.ListChannelsResponse:
        listed = await self._channels.list(current_principal().require_tenant(), request.event_id)
        return channels_pb2.ListChannelsResponse(channels=[channel_pb(c) for c in listed])


CHANNEL_SERVICE = ServiceDeclaration(
    descriptor=channels_pb2.DESCRIPTOR.services_by_name["ChannelService"],
    add_to_server=channels_pb2_grpc.add_ChannelServiceServicer_to_server,
    factory=lambda stores: ChannelServicer(stores.channels),
    methods={
        "DefineChannel": MethodRule(ORGANIZER),
        "AllocateToChannel": MethodRule(ORGANIZER),
        "CloseChannel": MethodRule(ORGANIZER),
        "ListChannels": MethodRule(ORGANIZER),
    },
)
