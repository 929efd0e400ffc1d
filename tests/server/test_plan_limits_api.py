"""Plan limits end to end: every limit refused with RESOURCE_EXHAUSTED naming it and
its value, notifications at exactly 80 % and 100 % recorded once per period for the
organizer and its platform (ListNotifications, paged), concurrent creations never
pass a limit, and ChangePlan (at once, audited)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from seatwise.v1 import events_pb2, platform_pb2, sales_pb2, seatmap_pb2

from tests.api import Api, status_of
from tests.server import test_platforms_api
from tests.server.events import make_event, published_map
from tests.server.maps import small_map
from tests.server.test_platforms_api import World, _sign_up
from tests.server.test_statements_api import sell

world = test_platforms_api.world  # two platforms, an organizer of each


async def _plan(world: World, plan_id: str, **limits: int) -> None:
    plan = platform_pb2.Plan(
        plan_id=plan_id,
        default_currency="EUR",
        prices={"EUR": platform_pb2.PlanPrices()},
        limits=platform_pb2.PlanLimits(**limits),
    )
    await world.p1.platforms.CreatePlan(platform_pb2.CreatePlanRequest(plan=plan), metadata=world.p1.metadata)


async def _organizer(world: World, plan_id: str, slug: str = "limited") -> tuple[str, Api]:
    signed = await _sign_up(world.p1, slug, plan_id=plan_id)
    return signed.organizer.organizer_id, Api(world.server, signed.api_key)


def _quota(err: grpc.aio.AioRpcError) -> list[str]:
    out = []
    for detail in status_of(err).details:
        failure = error_details_pb2.QuotaFailure()
        if detail.Unpack(failure):
            out += [v.subject for v in failure.violations]
    return out


async def _refused(call: object, limit: str, value: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"limit {limit} is {value}" in (err.value.details() or "")
    assert _quota(err.value) == [limit]


async def _notes(api: Api, **request: object) -> list[tuple[str, str, int, int]]:
    got = await api.platforms.ListNotifications(
        platform_pb2.ListNotificationsRequest(page_size=100, **request),  # type: ignore[arg-type]
        metadata=api.metadata,
    )
    return [(n.limit, n.kind, n.usage, n.limit_value) for n in reversed(got.notifications)]


async def test_tickets_per_month_notifies_at_exactly_80_and_100_percent(world: World) -> None:
    await _plan(world, "five", tickets_per_month=5)
    org_id, org = await _organizer(world, "five")
    async with org:
        event_id = await make_event(org)
        await sell(org, event_id, "k1", "r0-0", "r0-1", "r0-2")  # 3 of 5: 60 %
        assert await _notes(org) == []
        await sell(org, event_id, "k2", "r0-3")  # 4 of 5: exactly 80 %
        assert await _notes(org) == [("tickets_per_month", "limit_80", 4, 5)]
        await sell(org, event_id, "k3", "r0-4")  # 5 of 5: exactly 100 %
        expected = [("tickets_per_month", "limit_80", 4, 5), ("tickets_per_month", "limit_100", 5, 5)]
        assert await _notes(org) == expected
        for _ in range(2):  # refused, and never notified twice in the period
            await _refused(
                org.holds.HoldSeats(
                    sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r1-0"]), metadata=org.metadata
                ),
                "tickets_per_month",
                5,
            )
        await _refused(
            org.holds.HoldGeneralAdmission(
                sales_pb2.HoldGeneralAdmissionRequest(event_id=event_id, area_id="floor", quantity=1),
                metadata=org.metadata,
            ),
            "tickets_per_month",
            5,
        )
        assert await _notes(org) == expected
        # the platform's log has the same, naming the organizer
        platform_notes = await world.p1.platforms.ListNotifications(
            platform_pb2.ListNotificationsRequest(), metadata=world.p1.metadata
        )
        assert [(n.organizer_id, n.kind) for n in reversed(platform_notes.notifications)] == [
            (org_id, "limit_80"), (org_id, "limit_100"),
        ]  # fmt: skip
        # paged, newest first
        first = await org.platforms.ListNotifications(
            platform_pb2.ListNotificationsRequest(page_size=1), metadata=org.metadata
        )
        rest = await org.platforms.ListNotifications(
            platform_pb2.ListNotificationsRequest(page_size=1, page_token=first.next_page_token),
            metadata=org.metadata,
        )
        assert [n.kind for n in first.notifications] + [n.kind for n in rest.notifications] == [
            "limit_100",
            "limit_80",
        ]
        assert rest.next_page_token == ""


async def test_a_hold_that_would_pass_the_limit_is_refused(world: World) -> None:
    await _plan(world, "five", tickets_per_month=5)
    _, org = await _organizer(world, "five")
    async with org:
        event_id = await make_event(org)
        await sell(org, event_id, "k1", "r0-0", "r0-1", "r0-2")
        await _refused(
            org.holds.HoldSeats(
                sales_pb2.HoldSeatsRequest(event_id=event_id, seat_ids=["r1-0", "r1-1", "r1-2"]),
                metadata=org.metadata,
            ),
            "tickets_per_month",
            5,
        )
        await sell(org, event_id, "k2", "r1-0", "r1-1")  # exactly to the limit


async def test_events_per_month_and_active_events(world: World) -> None:
    await _plan(world, "small", events_per_month=3, active_events=2)
    _, org = await _organizer(world, "small")
    async with org:
        first = await make_event(org)  # events 1/3, active 1/2
        assert await _notes(org) == []
        await make_event(org)  # events 2/3 (66 %); active 2/2: 80 % and 100 % at once
        assert await _notes(org) == [
            ("active_events", "limit_80", 2, 2),
            ("active_events", "limit_100", 2, 2),
        ]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await make_event(org)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _quota(err.value) == ["active_events"]
        await org.events.UpdateEvent(
            events_pb2.UpdateEventRequest(event_id=first, status=events_pb2.EVENT_STATUS_CLOSED),
            metadata=org.metadata,
        )
        await make_event(org)  # events 3/3: 80 % and 100 %
        assert (await _notes(org))[2:] == [
            ("events_per_month", "limit_80", 3, 3), ("events_per_month", "limit_100", 3, 3),
        ]  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await make_event(org)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _quota(err.value) == ["events_per_month"]
        assert "limit events_per_month is 3" in (err.value.details() or "")


async def test_concurrent_event_creations_never_pass_the_limit(world: World) -> None:
    await _plan(world, "three", events_per_month=3)
    _, org = await _organizer(world, "three")
    async with org:
        sm = await published_map(org)
        request = events_pb2.CreateEventRequest(seat_map_id=sm.seat_map_id, name="Race", currency="EUR")
        results = await asyncio.gather(
            *(org.events.CreateEvent(request, metadata=org.metadata) for _ in range(8)),
            return_exceptions=True,
        )
        created = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(created) == 3
        assert len(refused) == 5
        assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        listed = await org.events.ListEvents(events_pb2.ListEventsRequest(), metadata=org.metadata)
        assert len(listed.events) == 3


async def test_seats_per_map(world: World) -> None:
    await _plan(world, "twenty", seats_per_map=20)
    _, org = await _organizer(world, "twenty")
    async with org:
        small = small_map(rows=2, seats_per_row=6, ga_capacity=3)  # 15 of 20: 75 %
        await org.seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=small), metadata=org.metadata
        )
        assert await _notes(org) == []
        at_80 = small_map(rows=2, seats_per_row=6, ga_capacity=4)  # 16 of 20: exactly 80 %
        await org.seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=at_80), metadata=org.metadata
        )
        assert await _notes(org) == [("seats_per_map", "limit_80", 16, 20)]
        at_100 = small_map(rows=2, seats_per_row=6, ga_capacity=8)  # 20 of 20
        await org.seatmaps.UploadSeatMap(
            seatmap_pb2.UploadSeatMapRequest(content=at_100), metadata=org.metadata
        )
        assert (await _notes(org))[1:] == [("seats_per_map", "limit_100", 20, 20)]
        await _refused(
            org.seatmaps.UploadSeatMap(
                seatmap_pb2.UploadSeatMapRequest(content=small_map(rows=3)), metadata=org.metadata
            ),
            "seats_per_map", 20,
        )  # fmt: skip
        assert len(await _notes(org)) == 2


async def test_change_plan_applies_at_once_and_is_audited(world: World) -> None:
    await _plan(world, "one", events_per_month=1)
    await _plan(world, "more", events_per_month=10)
    org_id, org = await _organizer(world, "one")
    async with org:
        await make_event(org)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await make_event(org)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        changed = await world.p1.platforms.ChangePlan(
            platform_pb2.ChangePlanRequest(organizer_id=org_id, plan_id="more"), metadata=world.p1.metadata
        )
        assert (changed.organizer.plan_id, changed.previous_plan_id) == ("more", "one")
        await make_event(org)  # the new plan's limit, with this month's usage carried over (2 of 10)
        # an organizer cannot change its own plan
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await org.platforms.ChangePlan(
                platform_pb2.ChangePlanRequest(plan_id="one"), metadata=org.metadata
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    log = await world.p1.platforms.ListAuditLog(
        platform_pb2.ListAuditLogRequest(method="ChangePlan"), metadata=world.p1.metadata
    )
    (entry,) = log.entries
    assert (entry.organizer_id, entry.targets["plan_id"], entry.outcome) == (org_id, "more", "OK")
    for organizer_id in (world.org2_id, "t_nonexistent"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.ChangePlan(
                platform_pb2.ChangePlanRequest(organizer_id=organizer_id, plan_id="more"),
                metadata=world.p1.metadata,
            )
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"organizer {organizer_id!r} not found",
        )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.p1.platforms.ChangePlan(
            platform_pb2.ChangePlanRequest(organizer_id=org_id, plan_id="gold"), metadata=world.p1.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_notifications_are_the_organizers_and_platforms_own(world: World) -> None:
    for organizer_id in (world.org2_id, "t_nonexistent"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.ListNotifications(
                platform_pb2.ListNotificationsRequest(organizer_id=organizer_id), metadata=world.p1.metadata
            )
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"organizer {organizer_id!r} not found",
        )
    for platform_id in ("p2", "p9"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await world.p1.platforms.ListNotifications(
                platform_pb2.ListNotificationsRequest(platform_id=platform_id), metadata=world.p1.metadata
            )
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"platform {platform_id!r} not found",
        )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await world.p1.platforms.ListNotifications(
            platform_pb2.ListNotificationsRequest(page_token="forged"), metadata=world.p1.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_creation_that_fails_is_not_counted(world: World) -> None:
    await _plan(world, "single", events_per_month=1, active_events=1)
    _, org = await _organizer(world, "single")
    async with org:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await make_event(org, currency="EURO")  # refused after it was counted: counted back
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await make_event(org)  # the month's one event
        assert await _notes(org) == [
            ("events_per_month", "limit_80", 1, 1), ("events_per_month", "limit_100", 1, 1),
            ("active_events", "limit_80", 1, 1), ("active_events", "limit_100", 1, 1),
        ]  # fmt: skip


async def test_organizers_without_a_plan_are_not_limited(world: World) -> None:
    for _ in range(3):
        await make_event(world.org1)
    assert await _notes(world.org1) == []
