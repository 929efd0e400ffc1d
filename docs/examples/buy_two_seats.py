"""Hold the two best available seats of an event and buy them, with the generated stubs.

    python3 -m uv run --frozen python docs/examples/buy_two_seats.py EVENT_ID

The key comes from SEATWISE_API_KEY (an organizer or storefront key), the server
from SEATWISE_TARGET (default 127.0.0.1:50051).
"""

import os
import sys
import uuid

import grpc
from seatwise.v1 import sales_pb2, sales_pb2_grpc

event_id = sys.argv[1]
api_key = os.environ["SEATWISE_API_KEY"]
target = os.environ.get("SEATWISE_TARGET", "127.0.0.1:50051")

with grpc.insecure_channel(target) as channel:
    auth = [("authorization", f"Bearer {api_key}")]
    holds, orders = sales_pb2_grpc.HoldServiceStub(channel), sales_pb2_grpc.OrderServiceStub(channel)
    best = sales_pb2.HoldBestAvailableRequest(event_id=event_id, quantity=2)
    hold = holds.HoldBestAvailable(best, metadata=auth).hold
    print("held", *hold.seat_ids, "until", hold.expires_at.ToJsonString())
    # One idempotency key per purchase: a retry with the same key returns the same order.
    commit = sales_pb2.CommitHoldRequest(hold_token=hold.hold_token, idempotency_key=f"pay-{uuid.uuid4()}")
    order = orders.CommitHold(commit, metadata=auth).order
    print("order", order.order_id, "for", order.total.amount_minor, order.total.currency, "minor units")
