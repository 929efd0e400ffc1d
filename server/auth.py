"""Who is calling, and may they call this method.

Every RPC carries ``authorization: Bearer sw_<id>_<secret>``. The key decides
the tenant: a caller never names its own tenant, so it cannot reach another's
data. Platform admins act on one tenant by naming it in ``x-seatwise-tenant``.
Each method admits the roles its service declares for it (``MethodRule.roles``
in the servicer module's declaration, see ``server/declarations.py``); a method
declared nowhere is refused (deny by default), except the public health and
reflection services.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from holds.records import RoleName

TENANT_HEADER = "x-seatwise-tenant"


class Unauthenticated(Exception):
    """No key, a malformed key, or a key that is unknown or revoked."""


class PermissionDenied(Exception):
    """A valid key whose role may not call this method or reach this tenant."""


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: RoleName
    tenant_id: str  # "" for a platform admin not acting on a tenant

    def require_tenant(self) -> str:
        """The tenant this call acts on; platform admins must name one."""
        if not self.tenant_id:
            raise PermissionDenied(
                f"platform admin calls on tenant data must name the tenant in '{TENANT_HEADER}'"
            )
        return self.tenant_id

    @property
    def is_admin(self) -> bool:
        return self.role == "platform_admin"


_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("seatwise_principal")


def current_principal() -> Principal:
    """The principal of the RPC being served (set by the wrapper, ``server/wrapping.py``)."""
    return _current.get()


def set_principal(principal: Principal) -> None:
    """For the current RPC's task (grpc.aio runs each RPC in a task of its own)."""
    _current.set(principal)


ADMIN: frozenset[RoleName] = frozenset({"platform_admin"})
ORGANIZER: frozenset[RoleName] = frozenset({"platform_admin", "organizer"})
SALES: frozenset[RoleName] = frozenset({"platform_admin", "organizer", "storefront"})
# door scanners (AccessService); organizers mint their keys
DOOR: frozenset[RoleName] = frozenset({"platform_admin", "organizer", "door"})

PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                   "/grpc.reflection.v1.ServerReflection/")  # fmt: skip


def parse_bearer(value: str | None) -> str:
    if not value:
        raise Unauthenticated("missing 'authorization: Bearer <api key>' metadata")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata must be 'Bearer <api key>'")
    return token.strip()


def authorize(method: str, allowed: frozenset[RoleName] | None, principal: Principal) -> None:
    """``allowed``: the roles the method declares; None (not declared) refuses every key."""
    if allowed is None:
        raise PermissionDenied(f"method {method} is not open to API keys")
    if principal.role not in allowed:
        raise PermissionDenied(f"role {principal.role} may not call {method.rsplit('/', 1)[-1]}")
