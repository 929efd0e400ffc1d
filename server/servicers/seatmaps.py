"""seatwise.v1.SeatMapService: thin translation between protos and the seat-map stores."""

from __future__ import annotations

import asyncio

import numpy as np
from seatwise.v1 import common_pb2, seatmap_pb2, seatmap_pb2_grpc

from holds.availability import STATE_NAMES
from holds.errors import InvalidRequest
from holds.records import SeatMapStats, SeatMapVersion
from holds.seatmaps import LoadedSeatMap
from seatmap import render
from seatmap.errors import SeatMapDecodeError, SeatMapInvalid
from seatmap.formats import Format, check_size
from seatmap.index import SeatIndex
from seatmap.model import json_encoder
from server import heavy_jobs
from server.auth import BROWSE, ORGANIZER, current_principal
from server.context import Stores
from server.declarations import MethodRule, ServiceDeclaration
from server.paging import page_bounds, page_token_after
from server.servicers import Context
from server.servicers.tenancy import timestamp_ms

DEFAULT_QUERY_LIMIT = 1_000
MAX_QUERY_LIMIT = 10_000
MAX_NEAREST = 1_000
_STATE = {"draft": seatmap_pb2.SEAT_MAP_STATE_DRAFT, "published": seatmap_pb2.SEAT_MAP_STATE_PUBLISHED}


def stats_pb(stats: SeatMapStats) -> seatmap_pb2.SeatMapStats:
    return seatmap_pb2.SeatMapStats(
        seat_count=stats.seat_count,
        section_count=stats.section_count,
        row_count=stats.row_count,
        table_count=stats.table_count,
        ga_area_count=stats.ga_area_count,
        ga_capacity=stats.ga_capacity,
        categories=stats.categories,
    )


def info_pb(record: SeatMapVersion, latest: int = 0) -> seatmap_pb2.SeatMapInfo:
    info = seatmap_pb2.SeatMapInfo(
        seat_map_id=record.seat_map_id,
        version=record.version,
        name=record.name,
        state=_STATE[record.state],
        stats=stats_pb(record.stats),
        created_at=timestamp_ms(record.created_at_ms),
        content_sha256=record.content_sha256,
        latest_version=latest or record.version,
    )
    if record.published_at_ms:
        info.published_at.CopyFrom(timestamp_ms(record.published_at_ms))
    return info


_FORMATS: dict[int, Format] = {
    seatmap_pb2.SEAT_MAP_FORMAT_UNSPECIFIED: "native",
    seatmap_pb2.SEAT_MAP_FORMAT_NATIVE_JSON: "native",
    seatmap_pb2.SEAT_MAP_FORMAT_PRETIX_JSON: "pretix",
}


_RENDER_FORMATS = frozenset(
    {
        seatmap_pb2.RENDER_FORMAT_UNSPECIFIED,
        seatmap_pb2.RENDER_FORMAT_SVG,
        seatmap_pb2.RENDER_FORMAT_PNG,
        seatmap_pb2.RENDER_FORMAT_PDF,
    }
)


def _format(value: int) -> Format:
    fmt = _FORMATS.get(value)
    if fmt is None:
        raise InvalidRequest("format", f"unknown seat map format {value}")
    return fmt


def seat_pb(index: SeatIndex, ordinal: int) -> seatmap_pb2.SeatInfo:
    placed = index.placed[ordinal]
    seat = placed.seat
    return seatmap_pb2.SeatInfo(
        seat_id=seat.id,
        label=seat.label,
        section_id=placed.section_id,
        group_id=placed.group_id,
        position=common_pb2.Point(x=seat.position.x, y=seat.position.y),
        category=seat.category,
        wheelchair=seat.wheelchair,
        companion=seat.companion,
        restricted_view=seat.restricted_view,
        aisle=seat.aisle,
        distance_to_focal=float(index.distance_to_focal(ordinal)),
    )


class SeatMapServicer(seatmap_pb2_grpc.SeatMapServiceServicer):
    def __init__(self, stores: Stores) -> None:
        self._seatmaps = stores.seatmaps
        self._live = stores.live
        self._heavy = stores.heavy  # decoding, validation and rendering run in its processes
        self._limits = stores.plan_limits

    async def ValidateSeatMap(
        self, request: seatmap_pb2.ValidateSeatMapRequest, context: Context
    ) -> seatmap_pb2.ValidateSeatMapResponse:
        tenant_id = current_principal().require_tenant()
        self._heavy.check(tenant_id)  # before the content is copied out of the request (up to 16 MB)
        fmt = _format(request.format)
        content = request.content  # each read of a bytes field copies it
        check_size(content)
        encoded = await self._heavy.run(tenant_id, heavy_jobs.validate_job, content, fmt)
        match heavy_jobs.validate_decoder.decode(encoded):
            case heavy_jobs.Undecodable(message=message, path=path):
                raise SeatMapDecodeError(message, path)
            case heavy_jobs.Checked(violations=violations, total=total, stats=stats):
                return seatmap_pb2.ValidateSeatMapResponse(
                    valid=not violations,
                    violations=[
                        seatmap_pb2.Violation(
                            code=v.code, path=v.path, element_id=v.element_id or "", message=v.message
                        )
                        for v in violations
                    ],
                    total_violations=total,
                    stats=stats_pb(stats),
                )
        raise AssertionError("unreachable: the decoder admits no other outcome")

    async def UploadSeatMap(
        self, request: seatmap_pb2.UploadSeatMapRequest, context: Context
    ) -> seatmap_pb2.UploadSeatMapResponse:
        tenant_id = current_principal().require_tenant()
        self._heavy.check(tenant_id)  # before the content is copied out of the request (up to 16 MB)
        fmt = _format(request.format)
        content = request.content  # each read of a bytes field copies it
        check_size(content)
        encoded = await self._heavy.run(tenant_id, heavy_jobs.upload_job, content, fmt)
        match heavy_jobs.upload_decoder.decode(encoded):
            case heavy_jobs.Undecodable(message=message, path=path):
                raise SeatMapDecodeError(message, path)
            case heavy_jobs.Invalid(violations=violations, total=total):
                raise SeatMapInvalid(violations, total)
            case heavy_jobs.Prepared(seatmap=prepared):
                await self._limits.check_map(
                    tenant_id, prepared.stats.seat_count + prepared.stats.ga_capacity
                )
                record = await self._seatmaps.put_prepared(tenant_id, request.seat_map_id, prepared)
                return seatmap_pb2.UploadSeatMapResponse(seat_map=info_pb(record))
        raise AssertionError("unreachable: the decoder admits no other outcome")

    async def PublishSeatMap(
        self, request: seatmap_pb2.PublishSeatMapRequest, context: Context
    ) -> seatmap_pb2.PublishSeatMapResponse:
        tenant_id = current_principal().require_tenant()
        _require_id(request.seat_map_id)
        record = await self._seatmaps.publish(tenant_id, request.seat_map_id, request.version)
        return seatmap_pb2.PublishSeatMapResponse(seat_map=info_pb(record))

    async def GetSeatMap(
        self, request: seatmap_pb2.GetSeatMapRequest, context: Context
    ) -> seatmap_pb2.GetSeatMapResponse:
        tenant_id = current_principal().require_tenant()
        _require_id(request.seat_map_id)
        latest = await self._seatmaps.latest_version_number(tenant_id, request.seat_map_id)
        if not request.include_content:
            record = await self._seatmaps.get_version(tenant_id, request.seat_map_id, request.version)
            return seatmap_pb2.GetSeatMapResponse(seat_map=info_pb(record, latest))
        loaded = await self._seatmaps.load(tenant_id, request.seat_map_id, request.version)
        content = await asyncio.to_thread(json_encoder.encode, loaded.seatmap)
        return seatmap_pb2.GetSeatMapResponse(seat_map=info_pb(loaded.version, latest), content=content)

    async def ListSeatMaps(
        self, request: seatmap_pb2.ListSeatMapsRequest, context: Context
    ) -> seatmap_pb2.ListSeatMapsResponse:
        tenant_id = current_principal().require_tenant()
        offset, limit = page_bounds(request.page.page_size, request.page.page_token)
        records, more = await self._seatmaps.list_latest(tenant_id, offset, limit)
        return seatmap_pb2.ListSeatMapsResponse(
            seat_maps=[info_pb(r) for r in records], next_page_token=page_token_after(offset, limit, more)
        )

    async def QuerySeats(
        self, request: seatmap_pb2.QuerySeatsRequest, context: Context
    ) -> seatmap_pb2.QuerySeatsResponse:
        tenant_id = current_principal().require_tenant()
        _require_id(request.seat_map_id)
        if request.limit < 0:
            raise InvalidRequest("limit", "must not be negative")
        limit = min(request.limit or DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT)
        loaded = await self._seatmaps.load(tenant_id, request.seat_map_id, request.version)
        ordinals = _run_query(loaded, request)
        return seatmap_pb2.QuerySeatsResponse(
            seats=[seat_pb(loaded.index, o) for o in ordinals[:limit]], truncated=len(ordinals) > limit
        )

    async def RenderSeatMap(
        self, request: seatmap_pb2.RenderSeatMapRequest, context: Context
    ) -> seatmap_pb2.RenderSeatMapResponse:
        tenant_id = current_principal().require_tenant()
        if request.format not in _RENDER_FORMATS:
            raise InvalidRequest("format", f"unknown render format {request.format}")
        status: dict[int, str] | None = None
        if request.event_id:
            ctx = await self._live.get(tenant_id, request.event_id)
            if request.seat_map_id and request.seat_map_id != ctx.ref.seat_map_id:
                raise InvalidRequest(
                    "seat_map_id", f"event {ctx.event_id} uses seat map {ctx.ref.seat_map_id}"
                )
            loaded = ctx.loaded
            states = (await self._live.mirror(ctx)).snapshot.states
            status = {int(o): STATE_NAMES[states[o]] for o in np.flatnonzero(states)}
        else:
            _require_id(request.seat_map_id)
            loaded = await self._seatmaps.load(tenant_id, request.seat_map_id, request.version)
        width, height = request.width or None, request.height or None  # 0: unset
        if request.format == seatmap_pb2.RENDER_FORMAT_PNG:
            png = await self._heavy.render_in_pool(
                tenant_id, render.render_png, loaded, status, width=width, height=height
            )
            return seatmap_pb2.RenderSeatMapResponse(content=png, content_type="image/png")
        if request.format == seatmap_pb2.RENDER_FORMAT_PDF:
            pdf = await self._heavy.render_in_pool(
                tenant_id, render.render_pdf, loaded, status, width=width, height=height
            )
            return seatmap_pb2.RenderSeatMapResponse(content=pdf, content_type="application/pdf")
        svg = await self._heavy.render_in_pool(
            tenant_id, render.render_svg, loaded, status, width=width, height=height
        )
        return seatmap_pb2.RenderSeatMapResponse(content=svg.encode(), content_type="image/svg+xml")


def _require_id(seat_map_id: str) -> None:
    if not seat_map_id:
        raise InvalidRequest("seat_map_id", "required")


def _run_query(loaded: LoadedSeatMap, request: seatmap_pb2.QuerySeatsRequest) -> list[int]:
    index = loaded.index
    match request.WhichOneof("query"):
        case "region":
            return index.seats_in_region([(p.x, p.y) for p in request.region.polygon])
        case "nearest":
            nearest = request.nearest
            if not 1 <= nearest.count <= MAX_NEAREST:
                raise InvalidRequest("nearest.count", f"must be 1-{MAX_NEAREST}")
            if nearest.max_distance < 0:
                raise InvalidRequest("nearest.max_distance", "must not be negative")
            return index.nearest(
                nearest.point.x, nearest.point.y, nearest.count, max_distance=nearest.max_distance or None
            )
        case "group":
            group = request.group
            if not group.section_id:
                raise InvalidRequest("group.section_id", "required")
            if group.row_id:
                return index.seats_by_row(group.section_id, group.row_id)
            return index.seats_by_section(group.section_id)
    raise InvalidRequest("query", "one of region, nearest or group is required")


SERVICE = ServiceDeclaration(
    descriptor=seatmap_pb2.DESCRIPTOR.services_by_name["SeatMapService"],
    add_to_server=seatmap_pb2_grpc.add_SeatMapServiceServicer_to_server,
    factory=SeatMapServicer,
    methods={
        "ValidateSeatMap": MethodRule(ORGANIZER),
        "UploadSeatMap": MethodRule(ORGANIZER),
        "PublishSeatMap": MethodRule(ORGANIZER),
        "GetSeatMap": MethodRule(BROWSE),
        "ListSeatMaps": MethodRule(BROWSE),
        "QuerySeats": MethodRule(BROWSE),
        "RenderSeatMap": MethodRule(BROWSE),
    },
)
