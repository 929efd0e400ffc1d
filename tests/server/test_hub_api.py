"""The platform hub and the organizers' CSV export, end to end: upcoming on-sale
events of every organizer of a platform with its slug and branding, filtered by
dates and organizer, paged, read with a storefront key; never another platform's."""

from __future__ import annotations

import csv
import io
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import events_pb2, platform_pb2

from holds import keys
from server.context import Stores
from tests.api import Api
from tests.server import test_platforms_api
from tests.server.events import make_event
from tests.server.test_branding_api import _storefront
from tests.server.test_platforms_api import World, _code, _sign_up
from tests.server.test_statements_api import sell

world = test_platforms_api.world  # two platforms, an organizer of each

DAY_MS = 86_400_000


def _ts(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


async def _dated(api: Api, days: int, name: str, **fields: object) -> str:
    at = int(time.time() * 1000) + days * DAY_MS
    return await make_event(api, starts_at=_ts(at), name=name, **fields)


async def test_hub_lists_upcoming_on_sale_events_of_its_platform_only(world: World) -> None:
    second = await _sign_up(world.p1, "second-hall")
    await world.org1.platforms.UpdateBranding(
        platform_pb2.UpdateBrandingRequest(display_name="Fair", primary_color="#112233"),
        metadata=world.org1.metadata,
    )
    async with (
        Api(world.server, second.api_key) as org_b,
        Api(world.server, world.p2.metadata[0][1][7:], world.org2_id) as acting2,
    ):
        e3 = await _dated(world.org1, 3, "In three days")
        e1 = await _dated(org_b, 1, "Tomorrow")
        e10 = await _dated(world.org1, 10, "In ten days")
        await _dated(world.org1, -1, "Yesterday")  # started: not upcoming
        await _dated(world.org1, 2, "Draft", status=events_pb2.EVENT_STATUS_DRAFT)  # not on sale
        await make_event(world.org1, name="Undated")  # no start time: not on the hub
        other = await _dated(acting2, 2, "Another platform's")
        async with Api(world.server, await _storefront(world.org1)) as shop:
            got = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(), metadata=shop.metadata
            )
            assert [e.event_id for e in got.events] == [e1, e3, e10]
            assert other not in {e.event_id for e in got.events}
            first = got.events[1]
            assert (first.organizer_id, first.organizer_slug, first.name) == (
                world.org1_id,
                "fair-tickets",
                "In three days",
            )
            assert (first.organizer_branding.display_name, first.organizer_branding.primary_color) == (
                "Fair",
                "#112233",
            )
            assert got.events[0].organizer_slug == "second-hall"
            # paged
            page1 = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(page_size=2), metadata=shop.metadata
            )
            page2 = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(page_size=2, page_token=page1.next_page_token),
                metadata=shop.metadata,
            )
            assert [e.event_id for e in page1.events] + [e.event_id for e in page2.events] == [e1, e3, e10]
            assert page2.next_page_token == ""
            # by date range and organizer
            now = int(time.time() * 1000)
            ranged = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(until=_ts(now + 5 * DAY_MS)), metadata=shop.metadata
            )
            assert [e.event_id for e in ranged.events] == [e1, e3]
            late = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(**{"from": _ts(now + 2 * DAY_MS)}),
                metadata=shop.metadata,  # type: ignore[arg-type]
            )
            assert [e.event_id for e in late.events] == [e3, e10]
            mine = await shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(organizer_id=world.org1_id), metadata=shop.metadata
            )
            assert [e.event_id for e in mine.events] == [e3, e10]
            # another platform's organizer matches nothing, as one that does not exist
            for organizer_id in (world.org2_id, "t_nonexistent"):
                got = await shop.platforms.ListHubEvents(
                    platform_pb2.ListHubEventsRequest(organizer_id=organizer_id), metadata=shop.metadata
                )
                assert list(got.events) == []
            # another platform: as one that does not exist
            for request, details in (
                (platform_pb2.ListHubEventsRequest(platform_id="p2"), "platform 'p2' not found"),
                (platform_pb2.ListHubEventsRequest(platform_id="p9"), "platform 'p9' not found"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await shop.platforms.ListHubEvents(request, metadata=shop.metadata)
                assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, details)
            bad = shop.platforms.ListHubEvents(
                platform_pb2.ListHubEventsRequest(**{"from": _ts(now + DAY_MS)}, until=_ts(now)),
                metadata=shop.metadata,  # type: ignore[arg-type]
            )
            assert await _code(bad) == grpc.StatusCode.INVALID_ARGUMENT
        # the other platform's admin sees its own hub
        theirs = await world.p2.platforms.ListHubEvents(
            platform_pb2.ListHubEventsRequest(), metadata=world.p2.metadata
        )
        assert [e.event_id for e in theirs.events] == [other]


async def test_a_suspended_organizers_events_leave_the_hub(world: World) -> None:
    e = await _dated(world.org1, 2, "Soon")
    await world.p1.platforms.SuspendOrganizer(
        platform_pb2.SuspendOrganizerRequest(organizer_id=world.org1_id, reason="unpaid"),
        metadata=world.p1.metadata,
    )
    got = await world.p1.platforms.ListHubEvents(
        platform_pb2.ListHubEventsRequest(), metadata=world.p1.metadata
    )
    assert list(got.events) == []
    await world.p1.platforms.UpdatePlatform(
        platform_pb2.UpdatePlatformRequest(public_sales_when_suspended=True), metadata=world.p1.metadata
    )
    got = await world.p1.platforms.ListHubEvents(
        platform_pb2.ListHubEventsRequest(), metadata=world.p1.metadata
    )
    assert [x.event_id for x in got.events] == [e]


async def test_organizers_export_as_csv_streamed(world: World) -> None:
    second = await _sign_up(world.p1, "second-hall")
    event_id = await make_event(world.org1)
    await sell(world.org1, event_id, "k1", "r0-0", "r0-1")
    await sell(world.org1, event_id, "k2", "r1-0")
    await world.p1.platforms.SuspendOrganizer(
        platform_pb2.SuspendOrganizerRequest(organizer_id=second.organizer.organizer_id, reason="late"),
        metadata=world.p1.metadata,
    )
    chunks = [c async for c in world.p1.platforms.ExportOrganizers(
        platform_pb2.ExportOrganizersRequest(), metadata=world.p1.metadata
    )]  # fmt: skip
    assert chunks[-1].rows_so_far == 2
    rows = list(csv.DictReader(io.StringIO(b"".join(c.data for c in chunks).decode())))
    assert [(r["organizer_id"], r["slug"], r["status"], r["tickets_sold"]) for r in rows] == [
        (world.org1_id, "fair-tickets", "active", "3"),
        (second.organizer.organizer_id, "second-hall", "suspended", "0"),
    ]
    assert list(rows[0]) == [
        "organizer_id",
        "name",
        "slug",
        "plan_id",
        "status",
        "created_at",
        "tickets_sold",
    ]
    # a period without sales
    now = int(time.time() * 1000)
    request = platform_pb2.ExportOrganizersRequest(
        period_start=_ts(now - 10 * DAY_MS), period_end=_ts(now - 5 * DAY_MS)
    )
    past = [c async for c in world.p1.platforms.ExportOrganizers(request, metadata=world.p1.metadata)]
    assert [
        r["tickets_sold"] for r in csv.DictReader(io.StringIO(b"".join(c.data for c in past).decode()))
    ] == ["0", "0"]


async def test_organizers_export_is_the_platforms_own(world: World) -> None:
    for platform_id in ("p2", "p9"):
        call = world.p1.platforms.ExportOrganizers(
            platform_pb2.ExportOrganizersRequest(platform_id=platform_id), metadata=world.p1.metadata
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            [c async for c in call]
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"platform {platform_id!r} not found",
        )
    call = world.org1.platforms.ExportOrganizers(
        platform_pb2.ExportOrganizersRequest(), metadata=world.org1.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [c async for c in call]
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    call = world.p1.platforms.ExportOrganizers(
        platform_pb2.ExportOrganizersRequest(period_start=_ts(1000)), metadata=world.p1.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [c async for c in call]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _hub(api: Api, **request: object) -> list[str]:
    got = await api.platforms.ListHubEvents(
        platform_pb2.ListHubEventsRequest(**request),  # type: ignore[arg-type]
        metadata=api.metadata,
    )
    return [e.event_id for e in got.events]


async def test_events_leave_the_hub_when_paused_or_closed(world: World) -> None:
    soon = await _dated(world.org1, 1, "Soon")
    later = await _dated(world.org1, 5, "Later")
    assert await _hub(world.p1) == [soon, later]
    update = world.org1.events.UpdateEvent
    await update(
        events_pb2.UpdateEventRequest(event_id=soon, status=events_pb2.EVENT_STATUS_PAUSED),
        metadata=world.org1.metadata,
    )
    assert await _hub(world.p1) == [later]
    await update(
        events_pb2.UpdateEventRequest(event_id=soon, status=events_pb2.EVENT_STATUS_ON_SALE),
        metadata=world.org1.metadata,
    )
    assert await _hub(world.p1) == [soon, later]
    assert await _hub(world.p1, organizer_id=world.org1_id) == [soon, later]
    for event_id in (soon, later):  # closed (the cancelled event's status): off the hub
        await update(
            events_pb2.UpdateEventRequest(event_id=event_id, status=events_pb2.EVENT_STATUS_CLOSED),
            metadata=world.org1.metadata,
        )
    assert await _hub(world.p1) == []
    assert await _hub(world.p1, organizer_id=world.org1_id) == []


async def test_hub_pages_with_a_cursor_over_equal_starts_and_filters(world: World, stores: Stores) -> None:
    second = await _sign_up(world.p1, "second-hall")
    at = int(time.time() * 1000) + 3 * DAY_MS
    async with Api(world.server, second.api_key) as org_b:
        ids = []
        for i in range(7):  # four at one instant, in two organizers
            api = world.org1 if i % 2 else org_b
            ids.append(await make_event(api, starts_at=_ts(at + (i // 4) * DAY_MS), name=f"E{i}"))
    expected = sorted(ids[:4]) + sorted(ids[4:])  # by start, then event id
    seen, token = [], ""
    while True:
        got = await world.p1.platforms.ListHubEvents(
            platform_pb2.ListHubEventsRequest(page_size=3, page_token=token), metadata=world.p1.metadata
        )
        assert len(got.events) <= 3
        seen += [e.event_id for e in got.events]
        token = got.next_page_token
        if not token:
            break
    assert seen == expected
    mine = [e for i, e in enumerate(ids) if i % 2]
    assert await _hub(world.p1, organizer_id=world.org1_id) == [e for e in expected if e in mine]
    assert await _hub(world.p1, until=_ts(at + 1)) == sorted(ids[:4])
    assert await _hub(world.p1, **{"from": _ts(at + 1)}) == sorted(ids[4:])
    # a forged cursor is refused naming the field
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _hub(world.p1, page_token="aDp4Onk=")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (err.value.details() or "")
    # events written before the index existed: built once, at the first hub call
    await stores.redis.delete(
        keys.platform_hub("p1"),
        keys.platform_hub_built("p1"),
        keys.platform_hub_organizer("p1", world.org1_id),
        keys.platform_hub_organizer("p1", second.organizer.organizer_id),
    )
    assert await _hub(world.p1, organizer_id=world.org1_id) == [e for e in expected if e in mine]
    assert await _hub(world.p1) == expected
