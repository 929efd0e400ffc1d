"""The values of an event's seats hash: one codec for every Python reader.

A seat is one field of the hash, keyed by its ordinal; a free seat has no field.

    h:<hold_id>    held by that hold (free again once the hold's lease has
                   passed: expiry is lazy, so the value may outlive the lease)
    s:<order_id>   sold to that order
    b              blocked
    n              not for sale

The scripts write and read them with the helpers of the inventory prelude
(``held_value``, ``sold_value``, ``seat_state`` in ``holds/lua/_inventory.lua``).
Values come as ``str`` or, straight from redis-py, as ``bytes``; :func:`decode`
answers in the same type, so a snapshot of a stadium decodes without copies.
"""

from __future__ import annotations

from typing import Literal, overload

# What a value says before lazy expiry is applied; "invalid": a corrupt value.
StoredState = Literal["free", "held", "sold", "blocked", "not_for_sale", "invalid"]

HELD_PREFIX = "h:"
SOLD_PREFIX = "s:"
BLOCKED = "b"
NOT_FOR_SALE = "n"

_STATES: dict[str, StoredState] = {
    HELD_PREFIX: "held",
    SOLD_PREFIX: "sold",
    BLOCKED: "blocked",
    NOT_FOR_SALE: "not_for_sale",
}
# keyed by a value's first two characters: a prefix, or all of "b" or "n"
_STATE_OF_HEAD: dict[str | bytes, StoredState] = {
    **{k: v for k, v in _STATES.items()},
    **{k.encode(): v for k, v in _STATES.items()},
}


def held_by(hold_id: str) -> str:
    return HELD_PREFIX + hold_id


def sold_to(order_id: str) -> str:
    return SOLD_PREFIX + order_id


@overload
def decode(value: bytes) -> tuple[StoredState, bytes]: ...
@overload
def decode(value: str | None) -> tuple[StoredState, str]: ...
def decode(value: str | bytes | None) -> tuple[StoredState, str | bytes]:
    """The state a value (``None``: no field) stands for, and its owner: the hold
    of a held seat, the order of a sold one (empty for "b", "n" and no field)."""
    if value is None:
        return "free", ""
    return _STATE_OF_HEAD.get(value[:2], "invalid"), value[2:]
