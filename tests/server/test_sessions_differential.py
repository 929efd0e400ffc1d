"""Hypothesis drives random sequences of sales operations through seatwise.client twice,
once over unary calls and once over sales sessions, each on a fresh event of its own,
and the two must see the same outcomes: the same replies (hold tokens, order and ticket
ids and times aside) or the same status codes, and consistent final Redis states.

The operations: hold seats (new, or added to a hold; some with a request id, some of
those sent again), GA holds, extend, get, release (whole or in part) and commit (fresh
or a reused idempotency key, of a live, released or committed hold).
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seatwise.client import SeatwiseClient, SeatwiseError
from seatwise.v1 import sales_pb2

from holds.redis_client import AnyRedis
from tests.api import Api
from tests.holds.factories import check_consistent, read_state
from tests.server.events import make_event

ROWS, PER_ROW = 2, 4
SEATS = [f"r{r}-{n}" for r in range(ROWS) for n in range(PER_ROW)]

OPS = st.one_of(
    st.tuples(
        st.just("hold"),
        st.lists(st.sampled_from(SEATS), min_size=1, max_size=3, unique=True),
        st.integers(-1, 3),  # add to the i-th hold made so far (-1: a new hold)
        st.integers(-1, 4),  # request id: the i-th (reused when it exists), -1 none
    ),
    st.tuples(st.just("ga"), st.integers(1, 3), st.integers(-1, 3), st.integers(-1, 4)),
    st.tuples(st.just("extend"), st.integers(0, 3)),
    st.tuples(st.just("get"), st.integers(0, 3)),
    st.tuples(st.just("release"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("commit"), st.integers(0, 3), st.integers(0, 2)),
)


def _normalize(reply: Message) -> Any:
    """What must agree between transports: no tokens, ids or times."""
    if isinstance(reply, sales_pb2.HoldResponse):
        h = reply.hold
        return ("hold", sorted(h.seat_ids), dict(h.general_admission), h.buyer_id, reply.replayed)
    if isinstance(reply, sales_pb2.CommitHoldResponse):
        o = reply.order
        return (
            "order",
            sorted(t.seat_id for t in o.tickets),
            o.status,
            o.total.SerializeToString(),
            reply.replayed,
        )
    if isinstance(reply, sales_pb2.ReleaseHoldResponse):
        return ("released",)
    return type(reply).__name__


async def _play(client: SeatwiseClient, event_id: str, ops: list[tuple[Any, ...]]) -> list[Any]:
    tokens: list[str] = []
    out: list[Any] = []
    for op in ops:
        kind = op[0]
        try:
            if kind in ("hold", "ga"):
                _, what, add_to, rid = op
                token = tokens[add_to] if 0 <= add_to < len(tokens) else ""
                fields: dict[str, Any] = {"request_id": f"req-{rid}"} if rid >= 0 else {}
                if kind == "hold":
                    reply: Message = await client.hold_seats(
                        event_id, what, hold_token=token, buyer_id="b", **fields
                    )
                else:
                    reply = await client.hold_general_admission(
                        event_id, "floor", what, hold_token=token, buyer_id="b", **fields
                    )
                assert isinstance(reply, sales_pb2.HoldResponse)
                if reply.hold.hold_token not in tokens:
                    tokens.append(reply.hold.hold_token)
            elif not tokens:
                out.append("no hold yet")
                continue
            else:
                token = tokens[op[1] % len(tokens)]
                if kind == "extend":
                    reply = await client.extend_hold(token)
                elif kind == "get":
                    reply = await client.get_hold(token)
                elif kind == "release":
                    held = await client.get_hold(token)
                    part = sorted(held.hold.seat_ids)[:1] if op[2] and len(held.hold.seat_ids) > 1 else []
                    reply = await client.release_hold(token, seat_ids=part)
                else:
                    reply = await client.commit_hold(token, f"key-{op[2]}")
            out.append(_normalize(reply))
        except SeatwiseError as exc:
            out.append(("error", exc.code.name))
    return out


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=14))
async def test_sessions_and_unary_calls_see_the_same_outcomes(
    organizer: Api, redis_client: AnyRedis, ops: list[tuple[Any, ...]]
) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    outcomes = []
    async with (
        SeatwiseClient(organizer.target, key, sessions=0) as unary,
        SeatwiseClient(organizer.target, key, sessions=2) as sessions,
    ):
        for client in (unary, sessions):
            event_id = await make_event(organizer, rows=ROWS, seats_per_row=PER_ROW, ga=3)
            outcomes.append(await _play(client, event_id, ops))
            check_consistent(await read_state(redis_client, event_id))
    assert outcomes[0] == outcomes[1]
    transient = {grpc.StatusCode.UNAVAILABLE.name, grpc.StatusCode.DEADLINE_EXCEEDED.name}
    assert not [o for o in outcomes[0] + outcomes[1] if o[0] == "error" and o[1] in transient]
