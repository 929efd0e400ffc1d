"""A small synchronous client for the CLI (and the README tour)."""

from __future__ import annotations

from types import TracebackType

import click
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from seatwise.v1 import seatmap_pb2, seatmap_pb2_grpc, tenancy_pb2, tenancy_pb2_grpc
from server.auth import TENANT_HEADER

_FORMATS = {"native": seatmap_pb2.SEAT_MAP_FORMAT_NATIVE_JSON, "pretix": seatmap_pb2.SEAT_MAP_FORMAT_PRETIX_JSON}
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def describe_error(error: grpc.RpcError) -> str:
    """Status, message and the field violations of a failed call, one per line."""
    lines = [f"{error.code().name}: {error.details()}"]  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            lines += [f"  {v.field}: {v.description}" for v in bad.field_violations]
        failure = error_details_pb2.PreconditionFailure()
        if detail.Unpack(failure):
            lines += [f"  {v.subject}: {v.description}" for v in failure.violations]
    return "\n".join(lines)


class Client:
    def __init__(self, target: str, api_key: str, tenant: str = "", timeout_s: float = 60.0) -> None:
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self._metadata = [("authorization", f"Bearer {api_key}")]
        if tenant:
            self._metadata.append((TENANT_HEADER, tenant))
        self._timeout = timeout_s
        self.seatmaps = seatmap_pb2_grpc.SeatMapServiceStub(self._channel)
        self.tenants = tenancy_pb2_grpc.TenantServiceStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self._channel.close()

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: object) -> object:  # type: ignore[type-arg]
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise click.ClickException(describe_error(exc)) from exc

    def upload_seatmap(self, content: bytes, fmt: str, seat_map_id: str = "") -> seatmap_pb2.SeatMapInfo:
        request = seatmap_pb2.UploadSeatMapRequest(seat_map_id=seat_map_id, content=content, format=_FORMATS[fmt])
        response = self._call(self.seatmaps.UploadSeatMap, request)
        assert isinstance(response, seatmap_pb2.UploadSeatMapResponse)
        return response.seat_map

    def publish_seatmap(self, seat_map_id: str, version: int) -> seatmap_pb2.SeatMapInfo:
        request = seatmap_pb2.PublishSeatMapRequest(seat_map_id=seat_map_id, version=version)
        response = self._call(self.seatmaps.PublishSeatMap, request)
        assert isinstance(response, seatmap_pb2.PublishSeatMapResponse)
        return response.seat_map

    def create_tenant_with_key(self, tenant_id: str, name: str) -> tuple[str, str]:
        created = self._call(self.tenants.CreateTenant, tenancy_pb2.CreateTenantRequest(tenant_id=tenant_id, name=name))
        assert isinstance(created, tenancy_pb2.CreateTenantResponse)
        key = self._call(
            self.tenants.CreateApiKey,
            tenancy_pb2.CreateApiKeyRequest(
                tenant_id=created.tenant.tenant_id, role=tenancy_pb2.ROLE_ORGANIZER, label="created by CLI"
            ),
        )
        assert isinstance(key, tenancy_pb2.CreateApiKeyResponse)
        return created.tenant.tenant_id, key.api_key
