"""The locustfile: the users and shape of one scenario, and the raw-timing recorder.

    SEATWISE_LOADTEST_SCENARIO=stadium-spike SEATWISE_LOADTEST_SETUP=setup.json \\
        locust -f loadtest/locustfile.py --headless -u 2000 -r 500 -t 60s

Locust collects the User and LoadTestShape classes it finds in this module's
namespace, so exactly the chosen scenario's classes are bound here. Normally
``python -m loadtest.runner`` sets all of this up.
"""

from __future__ import annotations

import gc
import os
from typing import Any, cast

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner

from loadtest import users
from loadtest.config import ENV_SCENARIO, ENV_SHAPE, out_dir_from_env
from loadtest.recording import RawTimings
from loadtest.scenarios import SCENARIOS
from loadtest.shapes import SHAPES

_scenario = SCENARIOS[os.environ.get(ENV_SCENARIO) or "stadium-spike"]
_shape = SHAPES[os.environ.get(ENV_SHAPE) or _scenario.shape]
for _cls in (*(getattr(users, name) for name in _scenario.users), _shape):
    globals()[_cls.__name__] = _cls


# A worker holds a thousand users' greenlets, stacks and stubs, which every full collection walks
# again; gRPC leaves a little cyclic garbage per call. Collect young garbage in larger batches and
# freeze what exists once the users are spawned (gen2 then only walks what came later).
GC_THRESHOLDS = (10_000, 20, 20)


def _tune_gc(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    gc.set_threshold(*GC_THRESHOLDS)
    hooks: Any = environment.events
    hooks.spawning_complete.add_listener(lambda **_: gc.freeze())


def _record_raw_timings(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # requests happen (and are timed) in the workers
    raw = RawTimings(out_dir_from_env())
    hooks: Any = environment.events
    hooks.request.add_listener(raw.on_request)
    hooks.test_stop.add_listener(raw.flush)
    hooks.quitting.add_listener(raw.close)


cast(Any, events.init).add_listener(_tune_gc)
cast(Any, events.init).add_listener(_record_raw_timings)
