"""docs/api.md's Python client example runs as written against a real server.

The block after :data:`MARKER` is run in a fresh interpreter with only its three
placeholders replaced: the target, the API key and the event id passed to ``sell``.
The event it sells from has the example's ``cat1`` category.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from seatwise.v1 import events_pb2, sales_pb2

from tests.api import Api
from tests.server.events import make_event
from tests.server.maps import small_map

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
MARKER = "<!-- tests/test_docs_examples.py runs the next block against a real server -->"
TARGET, API_KEY, EVENT_ID = '"127.0.0.1:50051"', '"sw_..."', '"ev_..."'


def client_example() -> str:
    text = API_DOC.read_text()
    assert text.count(MARKER) == 1, "docs/api.md marks its client example once"
    match = re.match(r"\s*```python\n(.*?)```", text[text.index(MARKER) + len(MARKER) :], re.S)
    assert match, "the marker is followed by a python block"
    return match.group(1)


async def _event_with_cat1(api: Api) -> str:
    """An on-sale event whose front row (6 adjacent seats) is the category ``cat1``."""
    doc = json.loads(small_map())
    for category in doc["categories"]:
        if category["key"] == "front":
            category["key"] = "cat1"
    for row in doc["sections"][0]["rows"]:
        for seat in row["seats"]:
            if seat["category"] == "front":
                seat["category"] = "cat1"
    prices = [
        events_pb2.CategoryPrice(category=c, amount_minor=a)
        for c, a in (("cat1", 5000), ("back", 3000), ("floor", 2000))
    ]
    return await make_event(api, content=json.dumps(doc).encode(), name="Docs night", prices=prices)


async def test_the_python_client_example_in_the_api_doc_runs(organizer: Api) -> None:
    key = organizer.metadata[0][1].removeprefix("Bearer ")
    event_id = await _event_with_cat1(organizer)
    source = client_example()
    for placeholder, value in ((TARGET, organizer.target), (API_KEY, key), (EVENT_ID, event_id)):
        assert source.count(placeholder) == 1, placeholder
        source = source.replace(placeholder, json.dumps(value))
    # another interpreter, so the example's own asyncio.run runs too; this loop serves it
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        source,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SEATWISE_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode == 0, err.decode()
    # it prints the order and its two seats, not an error's code
    printed = re.fullmatch(r"(\S+) \['(r0-\d)', '(r0-\d)'\]\n", out.decode())
    assert printed, out.decode() + err.decode()
    orders = await organizer.orders.ListOrders(
        sales_pb2.ListOrdersRequest(event_id=event_id), metadata=organizer.metadata
    )
    assert [(o.order_id, o.idempotency_key, o.buyer.name) for o in orders.orders] == [
        (printed.group(1), "payment-8812", "Ann")
    ]
    assert sorted(t.seat_id for t in orders.orders[0].tickets) == sorted(printed.group(2, 3))
