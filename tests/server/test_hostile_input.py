"""Hostile input: every RPC fuzzed with random bytes and random messages, plus
the classic abuses (oversized, invalid UTF-8, huge lists, negative numbers,
other tenants). Never INTERNAL or UNKNOWN, never a crash, never a half write.

The server runs as a child process (as in production) against the session's
real Redis, so hypothesis can drive it with the synchronous client.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace

import grpc
import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seatwise.v1 import events_pb2, sales_pb2, seatmap_pb2, session_pb2, tenancy_pb2

from server.app import SERVICES
from server.redis_process import EmbeddedRedis
from tests.processes import free_port, spawn_serve, wait_serving
from tests.server.maps import small_map

ADMIN_KEY = "sw_admin_fuzz-secret"
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
CATEGORIES = ("front", "back", "floor")
CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class Method:
    path: str
    request: type[Message]
    streaming: bool
    bidi: bool = False  # a sales session: the payload is its one request message


METHODS = [  # every method of every service the server serves
    Method(
        f"/{service.name}/{m.name}",
        message_factory.GetMessageClass(m.input_type),
        m.server_streaming,
        m.client_streaming,
    )
    for service in SERVICES
    for m in service.descriptor.methods
]


@dataclass
class Target:
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    event_id: str
    seat_map_id: str
    hold_token: str
    redis_url: str
    address: str

    def call(self, method: Method, payload: bytes, timeout: float = 5.0) -> grpc.StatusCode:
        """Send raw bytes; return the status code (OK on success)."""
        try:
            if method.bidi:  # the first answer (a per-message error is still an answer) or the status
                session = self.channel.stream_stream(method.path)(
                    iter([payload]), metadata=self.metadata, timeout=timeout
                )
                first = next(iter(session), None)
                session.cancel()
                if first is not None:
                    answer = session_pb2.SessionResponse.FromString(first)
                    if answer.WhichOneof("result") == "error":
                        return CODES[answer.error.code]
            elif method.streaming:  # a watch with nothing to say sends nothing: its deadline ends it
                # (a refusal comes at once; a valid watch's first item or its deadline both pass)
                stream = self.channel.unary_stream(method.path)(
                    payload, metadata=self.metadata, timeout=min(timeout, 0.3)
                )
                next(iter(stream), None)  # the first item or the error
                stream.cancel()
            else:
                self.channel.unary_unary(method.path)(payload, metadata=self.metadata, timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return,attr-defined]
        return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    redis = EmbeddedRedis(tmp / "redis", appendfsync="everysec")
    redis.start()
    port = free_port()
    settings = {"redis_url": redis.url, "port": str(port), "admin_key": ADMIN_KEY, "data_dir": str(tmp),
                "log_level": "error"}  # fmt: skip
    proc = spawn_serve(settings, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    try:
        wait_serving(address)
        channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 80 << 20)])
        yield _prepare(channel, redis.url, address)
        channel.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        redis.stop()
    assert "rpc.internal_error" not in stderr.decode(), stderr.decode()[-3000:]


def _prepare(channel: grpc.Channel, redis_url: str, address: str) -> Target:
    from seatwise.v1 import events_pb2_grpc, sales_pb2_grpc, seatmap_pb2_grpc, tenancy_pb2_grpc

    admin = (("authorization", f"Bearer {ADMIN_KEY}"),)
    tenants = tenancy_pb2_grpc.TenantServiceStub(channel)
    tenants.CreateTenant(tenancy_pb2.CreateTenantRequest(tenant_id="fuzz", name="Fuzz"), metadata=admin)
    key = tenants.CreateApiKey(
        tenancy_pb2.CreateApiKeyRequest(tenant_id="fuzz", role=tenancy_pb2.ROLE_ORGANIZER), metadata=admin
    ).api_key
    auth = (("authorization", f"Bearer {key}"),)
    maps = seatmap_pb2_grpc.SeatMapServiceStub(channel)
    sm = maps.UploadSeatMap(seatmap_pb2.UploadSeatMapRequest(content=small_map()), metadata=auth).seat_map
    maps.PublishSeatMap(
        seatmap_pb2.PublishSeatMapRequest(seat_map_id=sm.seat_map_id, version=1), metadata=auth
    )
    event = events_pb2_grpc.EventServiceStub(channel).CreateEvent(
        events_pb2.CreateEventRequest(
            seat_map_id=sm.seat_map_id, name="Fuzz", currency="EUR", status=events_pb2.EVENT_STATUS_ON_SALE,
            prices=[events_pb2.CategoryPrice(category=c, amount_minor=100) for c in CATEGORIES],
        ),
        metadata=auth,
    ).event  # fmt: skip
    hold = sales_pb2_grpc.HoldServiceStub(channel).HoldSeats(
        sales_pb2.HoldSeatsRequest(event_id=event.event_id, seat_ids=["r1-5"]), metadata=auth
    )
    return Target(channel, auth, event.event_id, sm.seat_map_id, hold.hold.hold_token, redis_url, address)


# -- random messages built from the descriptors --------------------------------------
_INTS = st.one_of(st.integers(-3, 12), st.integers(-(2**31), 2**31 - 1))
_TEXT = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "r0-0", "r0-1", "floor", "main", "row0", "front"])
)


def _field_value(
    field: pb_descriptor.FieldDescriptor, ids: list[str], depth: int
) -> st.SearchStrategy[object]:
    t = field.type
    if t == field.TYPE_MESSAGE:
        if depth > 2 or field.message_type.GetOptions().map_entry:
            return st.nothing()
        return _message(field.message_type, ids, depth + 1)
    if t == field.TYPE_STRING:
        return st.one_of(_TEXT, st.sampled_from(ids))
    if t == field.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(small_map()), st.just(b'{"name": 1}'))
    if t == field.TYPE_BOOL:
        return st.booleans()
    if t in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == field.TYPE_FLOAT else 64)
    if t == field.TYPE_ENUM:
        return st.integers(-1, 8)
    if t in (field.TYPE_INT64, field.TYPE_SINT64, field.TYPE_SFIXED64):
        return st.one_of(_INTS, st.integers(-(2**63), 2**63 - 1))
    if t in (field.TYPE_UINT32, field.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (field.TYPE_UINT64, field.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return _INTS


def _message(desc: pb_descriptor.Descriptor, ids: list[str], depth: int = 0) -> st.SearchStrategy[bytes]:
    """Random messages of ``desc``, made once per message type, ids and depth: hypothesis
    inspects a composite's source each time one is made, which nested messages (a
    session's request has dozens) would otherwise pay at every draw."""
    key = (desc.full_name, tuple(ids), depth)
    made = _MESSAGES.get(key)
    if made is None:
        made = _MESSAGES[key] = _new_message(desc, ids, depth)
    return made


_MESSAGES: dict[tuple[str, tuple[str, ...], int], st.SearchStrategy[bytes]] = {}


def _new_message(desc: pb_descriptor.Descriptor, ids: list[str], depth: int) -> st.SearchStrategy[bytes]:
    cls = message_factory.GetMessageClass(desc)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        msg = cls()
        for field in desc.fields:
            if not draw(st.booleans()):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue
            strategy = _field_value(field, ids, depth)
            if strategy.is_empty:  # a message nested too deep: left unset (a list of nothing is refused)
                continue
            if field.is_repeated:
                values = draw(st.lists(strategy, max_size=4))
                for v in values:
                    if field.type == field.TYPE_MESSAGE:
                        getattr(msg, field.name).add().MergeFromString(v)  # type: ignore[arg-type]
                    else:
                        getattr(msg, field.name).append(v)
            elif field.type == field.TYPE_MESSAGE:
                getattr(msg, field.name).MergeFromString(draw(strategy))
            else:
                try:
                    setattr(msg, field.name, draw(strategy))
                except (ValueError, TypeError):
                    continue  # e.g. an int out of the field's range: protobuf refuses it client-side
        return bytes(msg.SerializeToString())

    return build()


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.path)
def test_every_method_requires_a_key(target: Target, method: Method) -> None:
    """Every seatwise.v1 method is registered behind the auth wrapper, none bypasses it."""
    anonymous = replace(target, metadata=())
    assert anonymous.call(method, b"") == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.path.rsplit("/", 1)[-1])
def test_random_messages_never_crash(target: Target, method: Method) -> None:
    ids = [target.event_id, target.seat_map_id, target.hold_token, "fuzz"]

    @FUZZ
    @given(payload=_message(method.request.DESCRIPTOR, ids))
    def run(payload: bytes) -> None:
        assert target.call(method, payload) not in NEVER

    run()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.path.rsplit("/", 1)[-1])
def test_random_bytes_never_crash(target: Target, method: Method) -> None:
    @FUZZ
    @given(payload=st.binary(max_size=200))
    def run(payload: bytes) -> None:
        assert target.call(method, payload) not in NEVER

    run()


def test_invalid_utf8_is_invalid_argument(target: Target) -> None:
    hold_seats = next(m for m in METHODS if m.path.endswith("/HoldSeats"))
    payload = b"\x0a\x04\xff\xfe\xfd\xfc"  # field 1 (event_id), a string of invalid UTF-8
    assert target.call(hold_seats, payload) == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_request_is_refused(target: Target) -> None:
    upload = next(m for m in METHODS if m.path.endswith("/UploadSeatMap"))
    payload = seatmap_pb2.UploadSeatMapRequest(content=b" " * (65 << 20)).SerializeToString()
    assert target.call(upload, payload, timeout=30) == grpc.StatusCode.RESOURCE_EXHAUSTED


def _status(target: Target, name: str, request: Message) -> tuple[grpc.StatusCode, str]:
    method = next(m for m in METHODS if m.path.endswith(f"/{name}"))
    try:
        target.channel.unary_unary(method.path)(
            request.SerializeToString(), metadata=target.metadata, timeout=10
        )
    except grpc.RpcError as exc:
        return exc.code(), exc.details()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_huge_seat_list_names_the_field(target: Target) -> None:
    code, details = _status(
        target,
        "HoldSeats",
        sales_pb2.HoldSeatsRequest(event_id=target.event_id, seat_ids=[f"x{i}" for i in range(20_000)]),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "seat_ids" in details


@pytest.mark.parametrize("quantity", [0, -1, -(2**31)])
def test_negative_quantities(target: Target, quantity: int) -> None:
    code, details = _status(
        target,
        "HoldGeneralAdmission",
        sales_pb2.HoldGeneralAdmissionRequest(event_id=target.event_id, area_id="floor", quantity=quantity),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "quantity" in details
    code, _ = _status(
        target,
        "HoldBestAvailable",
        sales_pb2.HoldBestAvailableRequest(event_id=target.event_id, quantity=quantity),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_deeply_nested_seat_map(target: Target) -> None:
    nested = b'{"name": "x", "categories": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    code, _ = _status(target, "UploadSeatMap", seatmap_pb2.UploadSeatMapRequest(content=nested))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_enormous_seat_map_names_the_limit(target: Target) -> None:
    doc = json.loads(small_map())
    row = doc["sections"][0]["rows"][0]
    row["seats"] = [dict(row["seats"][0], id=f"s{i}", label=str(i)) for i in range(250_000)]
    code, details = _status(
        target, "ValidateSeatMap", seatmap_pb2.ValidateSeatMapRequest(content=json.dumps(doc).encode())
    )
    assert code == grpc.StatusCode.OK or code == grpc.StatusCode.INVALID_ARGUMENT, details
    code, details = _status(
        target, "UploadSeatMap", seatmap_pb2.UploadSeatMapRequest(content=json.dumps(doc).encode())
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "too_many" in details or "limit" in details


@pytest.mark.parametrize("tenant", ["other", "../fuzz", "fuzz\x00", "x" * 500])
def test_wrong_tenant_ids(target: Target, tenant: str) -> None:
    code, _ = _status(target, "ListApiKeys", tenancy_pb2.ListApiKeysRequest(tenant_id=tenant))
    assert code == grpc.StatusCode.PERMISSION_DENIED


# -- every error reaches a default client ---------------------------------------------
DEFAULT_METADATA_LIMIT = 8 * 1024  # a default client's soft limit: above it, replies are dropped at random


def _trailer_bytes(error: grpc.RpcError) -> int:
    """An error's trailers as HTTP/2 counts them (name + value + 32 per entry), with
    grpc-message percent-encoded at its worst (3 bytes per byte) and -bin values in base64."""
    size = 32 + len("grpc-status") + 2
    size += 32 + len("grpc-message") + 3 * len((error.details() or "").encode())  # type: ignore[attr-defined]
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        raw = value if isinstance(value, bytes) else value.encode()
        size += 32 + len(key) + (len(base64.b64encode(raw)) if key.endswith("-bin") else len(raw))
    return size


def _default_call(target: Target, method: Method, payload: bytes) -> grpc.RpcError | None:
    """``payload`` through a client with every default (a fresh channel, no options)."""
    with grpc.insecure_channel(target.address) as channel:
        try:
            if method.streaming:
                stream = channel.unary_stream(method.path)(payload, metadata=target.metadata, timeout=30)
                next(iter(stream), None)
                stream.cancel()
            else:
                channel.unary_unary(method.path)(payload, metadata=target.metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc
    return None


def _assert_fits(error: grpc.RpcError | None) -> None:
    assert error is not None
    details = error.details() or ""  # type: ignore[attr-defined]
    assert "metadata" not in details, details  # the client's own RESOURCE_EXHAUSTED
    assert error.code() not in NEVER, details  # type: ignore[attr-defined]
    assert _trailer_bytes(error) < DEFAULT_METADATA_LIMIT


def _loud(desc: pb_descriptor.Descriptor, ids: list[str]) -> Message:
    """A request whose every string is long, every list of strings long and every
    byte field a seat map with a hundred violations: the most an error could echo."""
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(desc)()
    for field in desc.fields:
        if field.type == field.TYPE_STRING:
            value = (ids[0] if ids else "") + "\u00e9\u0000%" * 3000
            if field.is_repeated:
                getattr(msg, field.name).extend([f"{i}-{value[:400]}" for i in range(2000)])
            else:
                setattr(msg, field.name, value)
        elif field.type == field.TYPE_BYTES and not field.is_repeated:
            setattr(msg, field.name, _map_with_violations(100))
    return msg


def _map_with_violations(count: int) -> bytes:
    """A valid map but for ``count`` seats of unknown categories with long names."""
    doc = json.loads(small_map(rows=1, seats_per_row=count))
    for n, seat in enumerate(doc["sections"][0]["rows"][0]["seats"]):
        seat["category"] = f"no-such-category-{n:03d}-" + "x" * 40
    return json.dumps(doc).encode()


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.path.rsplit("/", 1)[-1])
def test_every_error_fits_a_default_client(target: Target, method: Method) -> None:
    ids = {"event_id": target.event_id, "seat_map_id": target.seat_map_id}
    loud = _loud(method.request.DESCRIPTOR, [])
    for name, value in ids.items():  # reach past "not found" where the request names a resource
        if name in method.request.DESCRIPTOR.fields_by_name:
            setattr(loud, name, value)
    error = _default_call(target, method, loud.SerializeToString())
    if error is not None:  # WhoAmI has nothing to refuse
        _assert_fits(error)


def test_upload_with_a_hundred_violations_reaches_a_default_client(target: Target) -> None:
    upload = next(m for m in METHODS if m.path.endswith("/UploadSeatMap"))
    request = seatmap_pb2.UploadSeatMapRequest(content=_map_with_violations(100))
    error = _default_call(target, upload, request.SerializeToString())
    _assert_fits(error)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    reasons = _error_infos(error)
    assert reasons["SEAT_MAP_INVALID"]["total_violations"] == "100"
    assert int(reasons["DETAILS_TRUNCATED"]["omitted"]) > 0


def _error_infos(error: grpc.RpcError) -> dict[str, dict[str, str]]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    out = {}
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            out[info.reason] = dict(info.metadata)
    return out


def test_a_hundred_thousand_unknown_categories(target: Target) -> None:
    method = next(m for m in METHODS if m.path.endswith("/HoldBestAvailable"))
    request = sales_pb2.HoldBestAvailableRequest(
        event_id=target.event_id, quantity=1, categories=[f"category-{i}" for i in range(100_000)]
    )
    error = _default_call(target, method, request.SerializeToString())
    _assert_fits(error)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_a_megabyte_seat_id(target: Target) -> None:
    method = next(m for m in METHODS if m.path.endswith("/HoldSeats"))
    request = sales_pb2.HoldSeatsRequest(event_id=target.event_id, seat_ids=["s" * (1 << 20), "t" * 5000])
    error = _default_call(target, method, request.SerializeToString())
    _assert_fits(error)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_state_is_consistent_after_fuzzing(target: Target) -> None:
    """Whatever the fuzzers did, every held or sold seat points at a live record."""
    import redis

    client = redis.Redis.from_url(target.redis_url)
    for key in client.scan_iter(match="sw:{ev:*}:seats"):
        prefix = key.decode().removesuffix(":seats")
        holds = client.hgetall(f"{prefix}:holds")
        orders = {k.decode(): json.loads(v) for k, v in client.hgetall(f"{prefix}:orders").items()}
        for ordinal, value in client.hgetall(key).items():
            v = value.decode()
            if v.startswith("h:"):
                assert v[2:].encode() in holds
                assert int(ordinal) in json.loads(holds[v[2:].encode()])["seats"]
            elif v.startswith("s:"):
                tickets = orders[v[2:]]["tickets"]
                assert any(t.get("seat") == int(ordinal) and t["status"] == "valid" for t in tickets)
    client.close()
