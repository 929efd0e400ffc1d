"""What the hypothesis state machines over real Redis share: the runner's setup.

A test run opens one event loop, one set of stores and one synchronous client for all of its
examples (opening cluster clients is slow) and hands them to the machine class; each example
starts from a flushed Redis. The settings are the same for every machine but its example and
step counts: no deadline (the calls wait on Redis), no example database (the Redis state is
not replayable from it), only generation and shrinking, one minimal failure (shrunk quickly,
within the CI timeout).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from holds.errors import StoreError
from server.context import Stores
from tests.holds.factories import SyncRedis, sync_client


class StoreMachine(RuleBasedStateMachine):
    """A machine whose rules call the stores; :func:`run_machine` sets the class attributes."""

    loop: ClassVar[asyncio.AbstractEventLoop]
    sync: ClassVar[SyncRedis]
    stores: ClassVar[Stores]

    def __init__(self) -> None:
        super().__init__()
        self.sync.flushall()  # every example starts from an empty Redis

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> Any:
        """The call's result, or the store error it raised."""
        try:
            return self.run(coro)
        except StoreError as exc:
            return exc


def run_machine(machine: type[StoreMachine], redis_url: str, *, examples: int, steps: int) -> None:
    """Run ``machine`` against the Redis at ``redis_url`` for ``examples`` examples of at most
    ``steps`` steps, then close what the run opened."""
    loop = asyncio.new_event_loop()
    machine.loop = loop
    machine.sync = sync_client(redis_url)
    machine.stores = Stores.open(redis_url)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
                report_multiple_bugs=False,
                phases=[Phase.generate, Phase.shrink],
            ),
        )
    finally:
        loop.run_until_complete(machine.stores.close())
        loop.close()
        machine.sync.close()
