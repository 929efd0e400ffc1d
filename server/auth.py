"""Who is calling, and may they call this method.

Every RPC carries ``authorization: Bearer sw_<id>_<secret>``. The key decides
the organizer (tenant) or platform: a caller never names its own, so it cannot
reach another's data. Root admins act on any organizer, platform admins on
their platform's organizers, by naming it in ``x-seatwise-tenant``; an
organizer of another platform, or none, is the same ``NOT_FOUND``.
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
    tenant_id: str  # the organizer acted on; "" for an operator not acting on one
    platform_id: str = ""  # the key's platform, or the acted-on organizer's ("": root level)
    acting: bool = False  # an operator acting as the organizer (audited)

    def require_tenant(self) -> str:
        """The organizer this call acts on; operators must name one."""
        if not self.tenant_id:
            raise PermissionDenied(
                f"admin calls on an organizer's data must name the organizer in '{TENANT_HEADER}'"
            )
        return self.tenant_id

    @property
    def is_admin(self) -> bool:
        """An operator: the root admin or a platform admin."""
        return self.role in OPERATOR

    @property
    def is_root(self) -> bool:
        return self.role == "root_admin"


_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("seatwise_principal")


def current_principal() -> Principal:
    """The principal of the RPC being served (set by the wrapper, ``server/wrapping.py``)."""
    return _current.get()


def set_principal(principal: Principal) -> None:
    """For the current RPC's task (grpc.aio runs each RPC in a task of its own)."""
    _current.set(principal)


# Role sets (docs/security.md lists every method's; issue 13 split the old
# installation-wide admin into root and platform admins).
ROOT: frozenset[RoleName] = frozenset({"root_admin"})
OPERATOR: frozenset[RoleName] = frozenset({"root_admin", "platform_admin"})
ADMIN = OPERATOR  # the name the servicers used before platforms
ORGANIZER: frozenset[RoleName] = OPERATOR | {"organizer"}
BOX_OFFICE: frozenset[RoleName] = ORGANIZER | {"box_office"}  # the organizer's counter staff: sell, cancel
SALES: frozenset[RoleName] = BOX_OFFICE | {"storefront"}  # browse, hold, commit
AUDIT_READERS: frozenset[RoleName] = ORGANIZER  # the audit log: admins only
REPORTING: frozenset[RoleName] = BOX_OFFICE | {"reporting"}  # read orders and figures
BROWSE: frozenset[RoleName] = SALES | {"reporting"}  # read catalogue, events, availability
EVERY_ROLE: frozenset[RoleName] = BROWSE | {"door"}
# Roles whose keys name an organizer (the others are operators)
ORGANIZER_SCOPED: frozenset[RoleName] = EVERY_ROLE - OPERATOR
DOOR: frozenset[RoleName] = ORGANIZER | {"door"}  # door scanners (AccessService)

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
