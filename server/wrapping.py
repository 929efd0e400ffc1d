"""One wrapper around every RPC: authenticate, authorize, map errors, measure.

Each servicer method is wrapped once, when its service is registered, together
with the rule its service declares for it (roles, admission), instead of
through a grpc.aio interceptor: an interceptor costs an extra coroutine
chain on every call, and the hot path runs thousands of calls a second. The
principal the wrapper sets (a contextvar) is visible inside the servicer, and a
domain error raised anywhere in the servicer is turned into a status here, once.
It also gives every call its request id (``server/request_ids.py``): set for
the call's task (log lines, error details) and echoed in the reply's metadata
(a unary call's trailers; a stream's initial metadata, sent when it opens).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from google.rpc import code_pb2
from grpc_status import rpc_status

from holds.errors import InvalidRequest, NotFound, PreconditionFailed, StoreFault, StoreUnavailable
from holds.platform.audit import AuditLog
from holds.platform.platforms import PlatformStore
from holds.platform.tenants import TenantStore
from holds.records import RoleName, TenantRecord
from server import audit, metrics, request_ids
from server.admission import Admission, Admit, Overloaded
from server.auth import (
    ORGANIZER_SCOPED,
    PUBLIC_SERVICES,
    TENANT_HEADER,
    PermissionDenied,
    Principal,
    Unauthenticated,
    authorize,
    parse_bearer,
    set_principal,
)
from server.deadlines import Budgets, call_budget
from server.declarations import MethodRule
from server.errors import internal, to_status
from server.principals import KnownPrincipals

log = structlog.get_logger("seatwise.rpc")
REVALIDATE_S = 1.0  # how often an open stream's key is checked again


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not a valid message (e.g. invalid UTF-8 in a string)."""

    error: str


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """grpc answers an undecodable request with INTERNAL; we want INVALID_ARGUMENT."""
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            return Undecodable(str(exc) or type(exc).__name__)

    return decode


def _check_decoded(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise InvalidRequest("request", f"not a valid message: {request.error}")


class _KeyWatch:
    """Checks an open stream's key every REVALIDATE_S in a task beside the stream
    (``RpcWrapper._while_authorized``); once it fails, cancels the stream's task
    if that is not at a ``yield``."""

    def __init__(self, check: Callable[[], Awaitable[Any]]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.revoked: Exception | None = None
        self.at_yield = False  # gRPC is writing an item: not to be cancelled
        self._cancelled = False
        self._watchdog = asyncio.create_task(self._watch(check))

    async def _watch(self, check: Callable[[], Awaitable[Any]]) -> None:
        while True:
            await asyncio.sleep(REVALIDATE_S)
            try:
                await check()
            except Exception as exc:  # revoked, expired, or the store failed: end the stream
                self.revoked = exc
                if not self.at_yield:
                    self._cancelled = True
                    self._task.cancel()
                return

    def cancelled_it(self) -> bool:
        """A CancelledError in the stream's task is this watch's alone."""
        return self._cancelled and self._task.cancelling() <= 1

    def stop(self) -> None:
        self._watchdog.cancel()

    def raise_if_revoked(self) -> None:
        if self.revoked is not None:
            if self._cancelled:
                self._task.uncancel()  # ours, now turned into the revocation
            raise self.revoked


MethodHandlers = dict[str, "grpc.RpcMethodHandler[Any, Any]"]


class _MethodTable(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic in grpc-stubs only
    """Every wrapped method of seatwise.v1, found by one dict lookup per call.

    They are served as generic handlers, not as grpc's "registered methods": for
    each registered method grpc.aio's server loop keeps a pending future and waits
    on all of them (``asyncio.wait``) once per incoming call, so with our ~120
    methods every call paid ~120 done-callbacks added and removed (measured with
    ``scripts.bench.sales --profile-server``: about a tenth of the server's CPU).
    """

    def __init__(self) -> None:
        self.handlers: MethodHandlers = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self.handlers.get(handler_call_details.method)


class _Registrar:
    """Stands in for the server while a generated ``add_*Servicer_to_server`` runs:
    it receives the service's method handlers and puts them, wrapped, each bound
    to its method's rule (none: refused), in the table the server looks them up in."""

    def __init__(self, table: _MethodTable, wrapper: RpcWrapper, rules: Mapping[str, MethodRule]) -> None:
        self._table = table
        self._wrapper = wrapper
        self._rules = rules
        self.registered = False

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: the same handlers arrive, by name, in add_registered_method_handlers."""

    def add_registered_method_handlers(self, service: str, handlers: MethodHandlers) -> None:
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self._table.handlers[method] = self._wrapper.wrap(method, handler, self._rules.get(name))
        self.registered = True


class OrganizerSuspended(PreconditionFailed):
    """The calling organizer is suspended by its platform (FAILED_PRECONDITION with the reason)."""


class RpcWrapper:
    def __init__(
        self,
        tenants: TenantStore,
        admission: Admission | None = None,
        *,
        platforms: PlatformStore | None = None,
        audit_log: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        budgets: Budgets | None = None,
    ) -> None:
        self._tenants = tenants
        self._admission = admission or Admission()
        self._platforms = platforms
        self._audit = audit_log
        self._table = _MethodTable()
        self._known = KnownPrincipals(self._generation, clock)
        self._budgets = budgets or Budgets()
        self._server: grpc.aio.Server | None = None  # the one server the table is added to

    def _generation(self) -> int:
        platforms = self._platforms.generation if self._platforms is not None else 0
        return self._tenants.generation + platforms

    def register(
        self,
        server: grpc.aio.Server,
        add_to_server: Callable[[Any, Any], None],
        servicer: Any,
        rules: Mapping[str, MethodRule],
    ) -> None:
        """``add_to_server(servicer, server)`` with every method wrapped under its rule
        in ``rules`` (by method name); a method without one refuses every key."""
        if self._server is None:
            self._server = server
            server.add_generic_rpc_handlers((self._table,))
        elif server is not self._server:
            raise RuntimeError("an RpcWrapper registers the services of one server")
        registrar = _Registrar(self._table, self, rules)
        add_to_server(servicer, registrar)
        if not registrar.registered:  # generated code older than grpcio-tools 1.62
            raise RuntimeError(f"{add_to_server.__name__} registered no method handlers")

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any], rule: MethodRule | None
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if method.startswith(PUBLIC_SERVICES):
            return handler
        return self._wrap_handler(method, handler, rule)

    def _wrap_handler(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any], rule: MethodRule | None
    ) -> grpc.RpcMethodHandler[Any, Any]:
        deserializer = tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, rule),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, rule),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:  # sales sessions: each message decoded on its own
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream, rule, bidi=True),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming-only methods in seatwise.v1

    async def _principal(
        self,
        method: str,
        roles: frozenset[RoleName] | None,
        context: grpc.aio.ServicerContext[Any, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Principal:
        """The caller, authorized for ``method``: kept from an earlier call with the same
        credentials while what it was resolved from is fresh (``server/principals.py``)."""
        if metadata is None:
            metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        acting_on = str(metadata.get(TENANT_HEADER) or "")
        if not isinstance(authorization, str):
            return (await self._resolve(method, roles, authorization, acting_on))[0]
        digest = self._known.digest(authorization, acting_on)
        known = self._known.get(digest)
        if known is not None:
            authorize(method, roles, known)
            return known
        generation = self._known.generation()
        principal, fresh_until = await self._resolve(method, roles, authorization, acting_on)
        self._known.put(digest, principal, fresh_until, generation)
        return principal

    async def _recheck(
        self, method: str, roles: frozenset[RoleName] | None, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """An open stream's caller checked again, its key read from Redis rather than from
        this process's caches: a key revoked by any process ends the stream within
        REVALIDATE_S (a read per open stream per second; streams are few)."""
        metadata = dict(context.invocation_metadata() or ())
        acting_on = str(metadata.get(TENANT_HEADER) or "")
        await self._resolve(method, roles, metadata.get("authorization"), acting_on, fresh_key=True)

    async def _resolve(
        self,
        method: str,
        roles: frozenset[RoleName] | None,
        authorization: Any,
        acting_on: str,
        *,
        fresh_key: bool = False,
    ) -> tuple[Principal, float]:
        """The caller and the monotonic time that answer stops being fresh (the first of
        the records it was read from to do so); with ``fresh_key``, the key read from Redis."""
        api_key = parse_bearer(authorization)
        verified = await self._tenants.verify(api_key, fresh=fresh_key)
        if verified is None:
            raise Unauthenticated("unknown, revoked or expired API key")
        record, fresh_until = verified
        if record.role in ORGANIZER_SCOPED:
            if acting_on and acting_on != record.tenant_id:
                raise PermissionDenied(f"this key may not act on tenant {acting_on!r}")
            principal = Principal(record.key_id, record.role, record.tenant_id, record.platform_id)
        else:
            principal = Principal(record.key_id, record.role, "", record.platform_id)
        authorize(method, roles, principal)
        if record.role in ORGANIZER_SCOPED:
            organizer, organizer_fresh = await self._tenants.organizer_fresh(record.tenant_id)
            if organizer is None:  # its organizer is gone: the key is as good as revoked
                raise Unauthenticated("unknown, revoked or expired API key")
            platform_fresh = await self._check_not_suspended(organizer, record.role)
            principal = Principal(record.key_id, record.role, organizer.tenant_id, organizer.platform_id)
            return principal, min(fresh_until, organizer_fresh, platform_fresh)
        if acting_on:
            organizer, organizer_fresh = await self._tenants.organizer_fresh(acting_on)
            # another platform's organizer answers exactly as one that does not exist
            if organizer is None or (
                record.role == "platform_admin" and organizer.platform_id != record.platform_id
            ):
                raise NotFound("organizer", acting_on)
            principal = Principal(
                record.key_id, record.role, organizer.tenant_id, organizer.platform_id, acting=True
            )
            return principal, min(fresh_until, organizer_fresh)
        return principal, fresh_until

    async def _check_not_suspended(self, organizer: TenantRecord, role: RoleName) -> float:
        """A suspended organizer's own keys are refused, except its storefronts' when
        its platform lets public sales continue; operators acting on it are not.
        Returns until when the platform's setting, where it decided, is fresh."""
        if not organizer.suspended:
            return math.inf
        if role == "storefront" and organizer.platform_id and self._platforms is not None:
            platform, platform_fresh = await self._platforms.cached_fresh(organizer.platform_id)
            if platform is not None and platform.public_sales_when_suspended:
                return platform_fresh
        raise OrganizerSuspended(
            f"organizer {organizer.tenant_id!r} is suspended: {organizer.suspended_reason}",
            subject=f"organizer/{organizer.tenant_id}",
        )

    def _audited(self, rule: MethodRule | None, principal: Principal | None) -> bool:
        """Whether the call is written to the audit log (checked before awaiting the write:
        almost no call is, and the hot path should not pay a coroutine for it)."""
        return (
            self._audit is not None
            and principal is not None
            and rule is not None
            and (principal.acting or rule.audited)
        )

    async def _audit_call(
        self, method: str, rule: MethodRule | None, principal: Principal | None, request: Any, outcome: str
    ) -> None:
        if self._audit is not None and principal is not None and self._audited(rule, principal):
            await audit.write(self._audit, method, principal, request, outcome)

    async def _fail(self, method: str, context: grpc.aio.ServicerContext[Any, Any], exc: Exception) -> None:
        status = to_status(exc)
        if status is None:
            log.exception("rpc.internal_error", method=method)
            status = internal()
        elif isinstance(exc, StoreUnavailable):
            log.warning("rpc.store_unavailable", method=method, error=str(exc))
        elif isinstance(exc, StoreFault):  # the client sees a generic INTERNAL
            log.error("rpc.store_fault", method=method, error=str(exc))
        # abort replaces trailers set before: the request id goes with the status's
        grpc_status = rpc_status.to_status(status)
        trailers = (*grpc_status.trailing_metadata, (request_ids.HEADER, request_ids.current()))
        await context.abort(grpc_status.code, grpc_status.details, trailers)

    @staticmethod
    def _out_of_time(method: str) -> StoreUnavailable:
        # Redis too slow or away: answer within the caller's deadline
        return StoreUnavailable(f"{method}: no answer from the store within the call's deadline")

    def _wrap_unary(
        self, method: str, behaviour: Callable[..., Any], rule: MethodRule | None
    ) -> Callable[..., Awaitable[Any]]:
        roles = rule.roles if rule is not None else None
        sheddable = rule is None or rule.admission is Admit.SHEDDABLE

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            outcome = "OK"
            principal: Principal | None = None
            code = "OK"
            audited = False
            metadata = dict(context.invocation_metadata() or ())
            request_id = request_ids.accept(metadata.get(request_ids.HEADER))
            request_ids.set_current(request_id)  # the call's own task: no reset needed
            context.set_trailing_metadata(((request_ids.HEADER, request_id),))
            try:
                self._admission.enter(sheddable)
            except Overloaded as exc:
                metrics.observe_rpc(method, "Overloaded", time.perf_counter() - started)
                await self._fail(method, context, exc)
                raise

            async def serve() -> Any:
                nonlocal principal
                # each RPC runs in its own task: the context var needs no reset
                principal = await self._principal(method, roles, context, metadata)
                set_principal(principal)
                audit.begin()
                _check_decoded(request)
                return await behaviour(request, context)

            try:
                return await self._budgets.within(call_budget(context.time_remaining()), serve())
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    outcome = code = "ABORTED_BY_SERVICER"
                    raise
                if isinstance(exc, TimeoutError):
                    exc = self._out_of_time(method)
                outcome = type(exc).__name__
                status = to_status(exc)
                code = code_pb2.Code.Name(status.code) if status is not None else "INTERNAL"
                # written before the answer, as a success's is: when the caller has its
                # error, the audit log has the call (abort sends the status at once)
                audited = True
                await self._audit_call(method, rule, principal, request, code)
                await self._fail(method, context, exc)
                raise  # unreachable: abort raises
            finally:
                self._admission.leave()
                if not audited and self._audited(rule, principal):
                    await self._audit_call(method, rule, principal, request, code)
                metrics.observe_rpc(method, outcome, time.perf_counter() - started)

        return unary

    async def _while_authorized(
        self,
        method: str,
        roles: frozenset[RoleName] | None,
        items: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        """``items``, checking the caller's key again every REVALIDATE_S while the
        stream is open: a revoked key ends it with UNAUTHENTICATED within
        REVALIDATE_S of its revocation by any process, however quiet the stream is.

        The check runs in a watchdog task beside the stream, not around each item
        (a task and a wait per item cost a session ~10 % of its CPU per message).
        Once the key is revoked, the watchdog cancels the stream's task if it is
        waiting inside ``items`` (a quiet stream), and the cancellation is turned
        into the revocation here; if the stream is at a ``yield`` (gRPC is writing
        an item), it is ended when it asks for the next one, since cancelling gRPC's
        own write would end the call CANCELLED instead.
        """
        watch = _KeyWatch(lambda: self._recheck(method, roles, context))
        try:
            async for item in items:
                watch.at_yield = True
                yield item
                watch.at_yield = False
                if watch.revoked is not None:
                    break
        except asyncio.CancelledError:
            if not watch.cancelled_it():
                raise  # the call itself was cancelled (too)
        finally:
            watch.stop()
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                await aclose()
        watch.raise_if_revoked()

    def _wrap_stream(
        self, method: str, behaviour: Callable[..., Any], rule: MethodRule | None, *, bidi: bool = False
    ) -> Callable[..., AsyncIterator[Any]]:
        """A server stream, or with ``bidi`` a bidirectional one (``request`` is then the
        iterator of requests, each checked by the servicer): authenticated once, its
        key checked again every REVALIDATE_S; not counted by admission (a session's
        messages are admitted one by one, by their operation's rule)."""
        roles = rule.roles if rule is not None else None

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            outcome = "OK"
            metadata = dict(context.invocation_metadata() or ())
            request_id = request_ids.accept(metadata.get(request_ids.HEADER))
            request_ids.set_current(request_id)
            context.set_trailing_metadata(((request_ids.HEADER, request_id),))
            try:
                await context.send_initial_metadata(((request_ids.HEADER, request_id),))
                # no reset: a cancelled stream is closed from another context
                principal = await self._principal(method, roles, context, metadata)
                set_principal(principal)
                if not bidi:
                    _check_decoded(request)
                await self._audit_call(method, rule, principal, request, "STARTED")
                async for item in self._while_authorized(method, roles, behaviour(request, context), context):
                    yield item
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    outcome = "ABORTED_BY_SERVICER"
                    raise
                outcome = type(exc).__name__
                await self._fail(method, context, exc)
                raise
            finally:
                metrics.observe_rpc(method, outcome, time.perf_counter() - started)

        return stream
