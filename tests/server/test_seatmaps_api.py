"""SeatMapService end to end through a real server and Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import grpc
import pytest
from seatwise.v1 import common_pb2, seatmap_pb2

from tests.api import Api, field_violations
from tests.server.maps import small_map


async def _upload(api: Api, content: bytes, seat_map_id: str = "") -> seatmap_pb2.SeatMapInfo:
    response = await api.seatmaps.UploadSeatMap(
        seatmap_pb2.UploadSeatMapRequest(seat_map_id=seat_map_id, content=content), metadata=api.metadata
    )
    return response.seat_map


async def test_upload_publish_get_roundtrip(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    assert info.version == 1
    assert info.state == seatmap_pb2.SEAT_MAP_STATE_DRAFT
    assert info.stats.seat_count == 12
    assert info.stats.ga_capacity == 5
    published = await organizer.seatmaps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=info.seat_map_id, version=1),
        metadata=organizer.metadata,
    )
    assert published.seat_map.state == seatmap_pb2.SEAT_MAP_STATE_PUBLISHED
    got = await organizer.seatmaps.GetSeatMap(
        seatmap_pb2.GetSeatMapRequest(seat_map_id=info.seat_map_id, include_content=True),
        metadata=organizer.metadata,
    )
    assert got.seat_map.state == seatmap_pb2.SEAT_MAP_STATE_PUBLISHED
    assert json.loads(got.content)["name"] == "Small hall"


async def test_new_version_keeps_the_old_one(organizer: Api) -> None:
    first = await _upload(organizer, small_map(rows=2))
    second = await _upload(organizer, small_map(rows=3), first.seat_map_id)
    assert second.version == 2
    old = await organizer.seatmaps.GetSeatMap(
        seatmap_pb2.GetSeatMapRequest(seat_map_id=first.seat_map_id, version=1), metadata=organizer.metadata
    )
    assert old.seat_map.stats.seat_count == 12
    assert old.seat_map.latest_version == 2


async def test_invalid_map_is_rejected_with_field_violations_and_not_stored(organizer: Api) -> None:
    doc = json.loads(small_map())
    doc["sections"][0]["rows"][0]["seats"][1]["id"] = "r0-0"  # duplicate id
    doc["sections"][0]["rows"][1]["seats"][0]["category"] = "nope"  # unknown category
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(organizer, json.dumps(doc).encode())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = dict(field_violations(err.value))
    assert any("rows[0].seats[1]" in f for f in fields), fields
    assert any("unknown_category" in d for d in fields.values()), fields
    listed = await organizer.seatmaps.ListSeatMaps(
        seatmap_pb2.ListSeatMapsRequest(), metadata=organizer.metadata
    )
    assert list(listed.seat_maps) == []


async def test_undecodable_upload_names_the_path(organizer: Api) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(organizer, b'{"name": "x", "categories": [{"key": 5}]}')
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.startswith("content.categories[0]") for f, _ in field_violations(err.value))


async def test_validate_reports_everything_and_stores_nothing(organizer: Api) -> None:
    doc = json.loads(small_map())
    doc["sections"][0]["rows"][0]["seats"][0]["position"] = [-500, -500]  # outside the section
    result = await organizer.seatmaps.ValidateSeatMap(
        seatmap_pb2.ValidateSeatMapRequest(content=json.dumps(doc).encode()), metadata=organizer.metadata
    )
    assert not result.valid
    assert result.total_violations >= 1
    assert any(v.code == "seat_outside_section" and v.element_id == "r0-0" for v in result.violations)


async def test_query_seats_by_region_nearest_and_row(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    region = await organizer.seatmaps.QuerySeats(
        seatmap_pb2.QuerySeatsRequest(
            seat_map_id=info.seat_map_id,
            region=seatmap_pb2.Region(
                polygon=[common_pb2.Point(x=x, y=y) for x, y in [(50, 50), (230, 50), (230, 130), (50, 130)]]
            ),
        ),
        metadata=organizer.metadata,
    )
    assert sorted(s.seat_id for s in region.seats) == ["r0-0", "r0-1", "r0-2"]
    nearest = await organizer.seatmaps.QuerySeats(
        seatmap_pb2.QuerySeatsRequest(
            seat_map_id=info.seat_map_id,
            nearest=seatmap_pb2.Nearest(point=common_pb2.Point(x=100, y=100), count=2),
        ),
        metadata=organizer.metadata,
    )
    assert nearest.seats[0].seat_id == "r0-0"
    assert len(nearest.seats) == 2
    row = await organizer.seatmaps.QuerySeats(
        seatmap_pb2.QuerySeatsRequest(
            seat_map_id=info.seat_map_id, group=seatmap_pb2.InGroup(section_id="main", row_id="row1")
        ),
        metadata=organizer.metadata,
    )
    assert [s.seat_id for s in row.seats] == [f"r1-{n}" for n in range(6)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"nearest": seatmap_pb2.Nearest(point=common_pb2.Point(x=0, y=0), count=0)}, "nearest.count"),
        ({"group": seatmap_pb2.InGroup(section_id="")}, "group.section_id"),
        ({}, "query"),
    ],
)
async def test_bad_queries_name_the_field(organizer: Api, query: dict[str, object], field: str) -> None:
    info = await _upload(organizer, small_map())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.QuerySeats(
            seatmap_pb2.QuerySeatsRequest(seat_map_id=info.seat_map_id, **query),  # type: ignore[arg-type]
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()


async def test_unknown_row_is_invalid_argument(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.QuerySeats(
            seatmap_pb2.QuerySeatsRequest(
                seat_map_id=info.seat_map_id, group=seatmap_pb2.InGroup(section_id="main", row_id="nope")
            ),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_render_svg(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    rendered = await organizer.seatmaps.RenderSeatMap(
        seatmap_pb2.RenderSeatMapRequest(seat_map_id=info.seat_map_id), metadata=organizer.metadata
    )
    assert rendered.content_type == "image/svg+xml"
    root = ElementTree.fromstring(rendered.content)
    assert root.tag.endswith("svg")


async def test_another_tenant_cannot_see_the_map(admin: Api, organizer: Api, server: str) -> None:
    info = await _upload(organizer, small_map())
    other_key = await admin.new_tenant_key("globex")
    async with Api(server, other_key) as other:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await other.seatmaps.GetSeatMap(
                seatmap_pb2.GetSeatMapRequest(seat_map_id=info.seat_map_id), metadata=other.metadata
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await other.seatmaps.ListSeatMaps(seatmap_pb2.ListSeatMapsRequest(), metadata=other.metadata)
        assert list(listed.seat_maps) == []


async def test_list_pages(organizer: Api) -> None:
    for _ in range(3):
        await _upload(organizer, small_map())
    first = await organizer.seatmaps.ListSeatMaps(
        seatmap_pb2.ListSeatMapsRequest(page=common_pb2.PageRequest(page_size=2)), metadata=organizer.metadata
    )
    assert len(first.seat_maps) == 2
    assert first.next_page_token
    rest = await organizer.seatmaps.ListSeatMaps(
        seatmap_pb2.ListSeatMapsRequest(
            page=common_pb2.PageRequest(page_size=2, page_token=first.next_page_token)
        ),
        metadata=organizer.metadata,
    )
    assert len(rest.seat_maps) == 1
    assert not rest.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.ListSeatMaps(
            seatmap_pb2.ListSeatMapsRequest(page=common_pb2.PageRequest(page_token="garbage!")),
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_render_png(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    rendered = await organizer.seatmaps.RenderSeatMap(
        seatmap_pb2.RenderSeatMapRequest(seat_map_id=info.seat_map_id, format=seatmap_pb2.RENDER_FORMAT_PNG),
        metadata=organizer.metadata,
    )
    assert rendered.content_type == "image/png"
    assert rendered.content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_unknown_render_format_is_invalid_argument(organizer: Api) -> None:
    info = await _upload(organizer, small_map())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await organizer.seatmaps.RenderSeatMap(
            seatmap_pb2.RenderSeatMapRequest(seat_map_id=info.seat_map_id, format=7),  # type: ignore[arg-type]
            metadata=organizer.metadata,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(err.value)] == ["format"]


@pytest.mark.parametrize(("name", "code"), [("Hall\x00", "control_character"), ("\u200b", "empty_label")])
async def test_seat_map_names_without_control_characters_or_blanks(
    organizer: Api, name: str, code: str
) -> None:
    doc = json.loads(small_map())
    doc["name"] = name
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(organizer, json.dumps(doc).encode())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(f, d.split(":")[0]) for f, d in field_violations(err.value)] == [("content.name", code)]


# -- every integer of the format at the int32/int64 edges ----------------------------------------
EDGES = [
    -(2**64), -(2**63) - 1, -(2**63), -(2**31) - 1, -(2**31), -1, 0, 1,
    2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
]  # fmt: skip
PRETIX = Path(__file__).parents[1] / "seatmap" / "data" / "pretix_small.json"


def _number_shapes(value: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Each number of a document by its path, one per shape (list indices as 0)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        shape = tuple(0 if isinstance(step, int) else step for step in prefix)
        return {shape: prefix} if is_number else {}
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for key, child in items:
        for shape, path in _number_shapes(child, (*prefix, key)).items():
            out.setdefault(shape, path)
    return out


def _documents() -> list[tuple[str, str, bytes]]:
    native = json.loads(small_map(rows=1, seats_per_row=2))
    native |= {"format_version": 1, "seat_size": 50}
    native["sections"][0]["rows"][0]["seats"][0]["size"] = 40
    pretix = json.loads(PRETIX.read_text())
    pretix["zones"][1]["rows"][0]["row_number"] = 1  # the integer forms of the labels
    pretix["zones"][1]["rows"][0]["seats"][0]["seat_number"] = 1
    cases = []
    for fmt, doc in (("native", native), ("pretix", pretix)):
        for path in _number_shapes(doc).values():
            for edge in EDGES:
                mutated = json.loads(json.dumps(doc))
                parent = mutated
                for step in path[:-1]:
                    parent = parent[step]
                parent[path[-1]] = edge
                cases.append((fmt, f"{fmt}:{'.'.join(map(str, path))}={edge}", json.dumps(mutated).encode()))
    return cases


def test_every_integer_edge_validates_or_is_refused() -> None:
    """What ValidateSeatMap and UploadSeatMap run, for every number of both formats at
    every edge: a report whose statistics fit their proto fields, or a decode error."""
    from server import heavy_jobs
    from server.servicers.seatmaps import stats_pb

    for fmt, case, content in _documents():
        outcome = heavy_jobs.validate_decoder.decode(heavy_jobs.validate_job(content, fmt))  # type: ignore[arg-type]
        if isinstance(outcome, heavy_jobs.Checked):
            stats_pb(outcome.stats)  # raises on an int32/int64 overflow
        heavy_jobs.upload_decoder.decode(heavy_jobs.upload_job(content, fmt))  # type: ignore[arg-type]
        assert case  # (named in a failure's traceback)


@pytest.mark.parametrize("capacity", [2**63 - 1, 2**63, 2**64 - 1, -(2**63)])
async def test_huge_ga_capacity_is_a_violation_or_invalid_argument(organizer: Api, capacity: int) -> None:
    doc = json.loads(small_map())
    doc["ga_areas"][0]["capacity"] = capacity
    doc["ga_areas"].append(dict(doc["ga_areas"][0], id="floor2", outline=[[2000, 0], [2400, 0], [2400, 400]]))
    content = json.dumps(doc).encode()
    refused: grpc.StatusCode | None = None
    try:
        reply = await organizer.seatmaps.ValidateSeatMap(
            seatmap_pb2.ValidateSeatMapRequest(content=content), metadata=organizer.metadata
        )
    except grpc.aio.AioRpcError as exc:
        refused = exc.code()
    if refused is not None:
        assert refused == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert "ga_capacity_invalid" in [v.code for v in reply.violations]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(organizer, content)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_render_to_a_size_and_to_pdf(organizer: Api) -> None:
    info = await _upload(organizer, small_map())

    async def render(**fields: int) -> seatmap_pb2.RenderSeatMapResponse:
        request = seatmap_pb2.RenderSeatMapRequest(seat_map_id=info.seat_map_id, **fields)  # type: ignore[arg-type]
        response: seatmap_pb2.RenderSeatMapResponse = await organizer.seatmaps.RenderSeatMap(
            request, metadata=organizer.metadata
        )
        return response

    png = await render(format=seatmap_pb2.RENDER_FORMAT_PNG, width=320)
    assert int.from_bytes(png.content[16:20], "big") == 320
    default = await render(format=seatmap_pb2.RENDER_FORMAT_PNG)
    size = int.from_bytes(default.content[16:20], "big"), int.from_bytes(default.content[20:24], "big")
    assert max(size) == 2400
    pdf = await render(format=seatmap_pb2.RENDER_FORMAT_PDF, height=300)
    assert pdf.content_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    svg = await render(width=500)
    assert ElementTree.fromstring(svg.content).attrib["width"] == "500"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await render(format=seatmap_pb2.RENDER_FORMAT_PNG, width=100_000)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10000 pixels" in (err.value.details() or "")
