"""seatwise.v1.ExportService: an organizer's orders, tickets, check-ins, marketing
contacts and statements as CSV or JSON Lines, streamed in chunks (docs/data.md#exports)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp
from seatwise.v1 import reports_pb2, reports_pb2_grpc

from holds.billing import Billing, check_period
from holds.errors import InvalidRequest
from holds.feed.exports import COLUMNS, ExportKind, ExportReader, TimeRange
from holds.records import RoleName
from rules.reports import BOM, ExportFormat, encode_rows, header
from rules.statements import CSV_HEADER, statement_csv, statement_rows
from server.auth import ORGANIZER, current_principal
from server.declarations import MethodRule, ServiceDeclaration
from server.servicers import Context
from server.servicers.convert import millis_of

# Exports carry buyers' personal data in bulk: organizer admins and reporting keys,
# not box-office counter staff.
EXPORTERS: Final[frozenset[RoleName]] = ORGANIZER | {"reporting"}
CHUNK_BYTES: Final = 64 * 1024  # a chunk is sent once it holds this much (or the export ends)
ROWS_PER_ENCODE: Final = 500

_KINDS: Final[dict[int, ExportKind]] = {
    reports_pb2.EXPORT_KIND_ORDERS: "orders",
    reports_pb2.EXPORT_KIND_TICKETS: "tickets",
    reports_pb2.EXPORT_KIND_CHECKINS: "checkins",
    reports_pb2.EXPORT_KIND_CONTACTS: "contacts",
}
_FORMATS: Final[dict[int, ExportFormat]] = {
    reports_pb2.EXPORT_FORMAT_UNSPECIFIED: "csv",
    reports_pb2.EXPORT_FORMAT_CSV: "csv",
    reports_pb2.EXPORT_FORMAT_JSONL: "jsonl",
}


def ms_of(request: reports_pb2.ExportRequest | reports_pb2.GetPlatformReportRequest, name: str) -> int:
    if not request.HasField(name):  # type: ignore[arg-type]
        return 0
    stamp: Timestamp = getattr(request, name)
    return millis_of(stamp, name, since_1970=True)


class ExportServicer(reports_pb2_grpc.ExportServiceServicer):
    def __init__(self, reader: ExportReader, billing: Billing) -> None:
        self._reader = reader
        self._billing = billing

    async def Export(
        self, request: reports_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[reports_pb2.ExportChunk]:
        tenant = current_principal().require_tenant()
        fmt = _FORMATS.get(request.format)
        if fmt is None:
            raise InvalidRequest("format", f"unknown export format {request.format}")
        if request.bom and fmt != "csv":
            raise InvalidRequest("bom", "only for CSV")
        if request.kind == reports_pb2.EXPORT_KIND_STATEMENT:
            yield await self._statement(tenant, request, fmt)
            return
        kind = _KINDS.get(request.kind)
        if kind is None:
            raise InvalidRequest("kind", "required: orders, tickets, checkins, contacts or statement")
        period = TimeRange(ms_of(request, "from"), ms_of(request, "until"))
        if period.from_ms and period.until_ms and period.until_ms <= period.from_ms:
            raise InvalidRequest("until", "must be after from")
        event_ids = await self._reader.event_ids(tenant, request.event_id)
        columns = COLUMNS[kind]
        estimate = await self._reader.estimate(kind, event_ids)
        buffer = bytearray(header(columns, fmt, bom=request.bom))
        rows_in_buffer = total = 0
        first = True
        async for rows in self._reader.rows(tenant, kind, event_ids, period):
            for start in range(0, len(rows), ROWS_PER_ENCODE):
                part = rows[start : start + ROWS_PER_ENCODE]
                buffer += encode_rows(columns, part, fmt)
                rows_in_buffer += len(part)
                if len(buffer) >= CHUNK_BYTES:
                    total += rows_in_buffer
                    yield reports_pb2.ExportChunk(
                        data=bytes(buffer),
                        rows=rows_in_buffer,
                        rows_so_far=total,
                        rows_estimate=estimate if first else 0,
                    )
                    buffer.clear()
                    rows_in_buffer, first = 0, False
        total += rows_in_buffer
        if buffer or first:
            yield reports_pb2.ExportChunk(
                data=bytes(buffer),
                rows=rows_in_buffer,
                rows_so_far=total,
                rows_estimate=estimate if first else 0,
            )

    async def _statement(
        self, tenant: str, request: reports_pb2.ExportRequest, fmt: ExportFormat
    ) -> reports_pb2.ExportChunk:
        """A statement is a few dozen rows: one chunk."""
        for name in ("from", "until"):
            if not request.HasField(name):
                raise InvalidRequest(name, "required for a statement")
        period = check_period(ms_of(request, "from"), ms_of(request, "until"), "until")
        event_ids = await self._reader.event_ids(tenant, request.event_id) if request.event_id else None
        statement = await self._billing.statement(tenant, period, event_ids)
        rows = list(statement_rows(statement))
        if fmt == "csv":
            data = (BOM if request.bom else b"") + "".join(statement_csv(statement)).encode()
        else:
            data = encode_rows(CSV_HEADER, rows, "jsonl")
        n = len(rows)
        return reports_pb2.ExportChunk(data=data, rows=n, rows_so_far=n, rows_estimate=n)


SERVICE = ServiceDeclaration(
    descriptor=reports_pb2.DESCRIPTOR.services_by_name["ExportService"],
    add_to_server=reports_pb2_grpc.add_ExportServiceServicer_to_server,
    factory=lambda stores: ExportServicer(ExportReader(stores.redis, stores.live), Billing(stores.redis)),
    methods={"Export": MethodRule(EXPORTERS)},
)
