"""Minimum-distance seating in the inventory: what a hold script is told, and what it answers.

The rule is an event setting (``meta`` field ``distancing``, its canonical text from
:mod:`seatmap.distancing`). Blocking is never stored: a free seat is blocked for a
group when one of its neighbours is held or sold to another group, so cancelling
or releasing a group frees its neighbours with nothing to undo. The scripts that
take seats for a group (``hold.lua``, ``box_office.lua``, ``exchange.lua``) check it in
``_distance.lua``; Python gives them each asked seat's neighbours under the rule it
knows, with the rule's text, and the script answers "rule changed" (with the
stored rule) when it is not the event's any more, so a process that missed an
organizer's change learns it from the refusal and asks again once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from holds.errors import Conflict
from holds.replies import Reply
from holds.script_channel import EncodableArg
from seatmap.distancing import Neighbourhoods

MARK = "distancing"  # _distance.lua's DISTANCE_MARK


def script_args(rule: str, near: Neighbourhoods | None, ordinals: Sequence[int]) -> list[EncodableArg]:
    """The arguments appended last to a seat-taking script: the mark, the rule's text, one
    ``ordinal:neighbour,...`` per asked seat (none without a rule), and their count."""
    specs: list[EncodableArg] = []
    if rule and near is not None:
        indptr, indices = near.indptr, near.indices
        for o in ordinals:
            around = indices[indptr[o] : indptr[o + 1]].tolist()
            specs.append(f"{o}:{','.join(map(str, around))}")
    return [MARK, rule, *specs, 2 + len(specs)]


NO_RULE_ARGS: tuple[EncodableArg, ...] = (MARK, "", 2)


class SeatOrdinalsDistanced(Exception):
    """Raised inside the inventory with ordinals; the service names the seats."""

    def __init__(self, ordinals: list[int]) -> None:
        super().__init__(f"{len(ordinals)} seat(s) within the minimum distance of another group")
        self.ordinals = ordinals


class RuleChanged(Conflict):
    """The event's distancing rule is not the one the call was computed with."""

    def __init__(self, rule: str) -> None:
        super().__init__("the event's distancing rule changed during the call; retry")
        self.rule = rule


def refusal(reply: Any) -> Exception | None:
    """The error of ``_distance.lua``'s replies, else None."""
    match reply:
        case [Reply.SEATS_DISTANCED, refused]:
            return SeatOrdinalsDistanced([int(o) for o in refused])
        case [Reply.DISTANCE_RULE_CHANGED, rule]:
            return RuleChanged(rule.decode() if isinstance(rule, bytes) else str(rule))
    return None


T = TypeVar("T")


class KnowsRule(Protocol):
    """What :func:`with_current_rule` needs of a live event (holds/live.py LiveEvent)."""

    async def learn(self, rule: str) -> None: ...

    def distancing_args(self, ordinals: list[int]) -> list[EncodableArg]: ...


async def with_current_rule(
    event: KnowsRule, ordinals: list[int], call: Callable[[list[EncodableArg]], Awaitable[T]]
) -> T:
    """``call`` with the script arguments of the rule ``event`` knows; when the script
    answers that the stored rule is another, learn it from the answer and call once more."""
    try:
        return await call(event.distancing_args(ordinals))
    except RuleChanged as exc:
        await event.learn(exc.rule)
    return await call(event.distancing_args(ordinals))
