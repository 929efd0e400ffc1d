"""What each gRPC service declares about itself, once, at the end of its servicer module.

A :class:`ServiceDeclaration` names the service (its proto descriptor), how to
register it (the generated ``add_*Servicer_to_server``), how to build its
servicer from the process's :class:`~server.context.Stores`, and a
:class:`MethodRule` per method: the roles that may call it and whether it may
be shed under overload. ``server/app.py`` registers, reports health for and
reflects exactly the services of its ``SERVICES`` list; the wrapper binds each
method's rule when the method is registered, so a call looks nothing up. A
method without a rule is refused (deny by default);
``tests/server/test_declarations.py`` fails when a method of a ``seatwise.v1``
service has none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.descriptor import ServiceDescriptor

from holds.records import RoleName
from server.admission import Admit

if TYPE_CHECKING:
    from server.context import Stores

S = TypeVar("S")


@dataclass(frozen=True)
class MethodRule:
    roles: frozenset[RoleName]
    admission: Admit = Admit.SHEDDABLE
    audited: bool = False  # every call written to the audit log (changes of keys, plans, suspension, ...)


@dataclass(frozen=True)
class ServiceDeclaration(Generic[S]):
    descriptor: ServiceDescriptor
    add_to_server: Callable[[S, Any], None]
    factory: Callable[[Stores], S]
    methods: Mapping[str, MethodRule]

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(self.descriptor.methods_by_name)
        if unknown:
            raise ValueError(f"{self.name} declares methods it does not have: {sorted(unknown)}")

    @property
    def name(self) -> str:
        """The full service name, e.g. ``seatwise.v1.HoldService``."""
        return str(self.descriptor.full_name)


def method_rules(services: Iterable[ServiceDeclaration[Any]]) -> dict[str, MethodRule]:
    """Each declared method's rule by its path, ``/seatwise.v1.HoldService/HoldSeats``."""
    return {f"/{s.name}/{method}": rule for s in services for method, rule in s.methods.items()}
