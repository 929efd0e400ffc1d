"""Request ids: one per call, the client's own when it sends a usable one.

A client may name its call in the ``x-request-id`` metadata (its own trace or
correlation id: 1-128 characters of ``A-Z a-z 0-9 . _ : / + = -``); anything
else (absent, too long, another character) is replaced by a generated id, so
an id is always safe to log and to echo. The wrapper (``server/wrapping.py``)
sets it for the call's task: every log line of the call carries it
(``server/logging.py``), error statuses carry it as a ``google.rpc.RequestInfo``
detail (``server/errors.py``) and the reply's metadata echoes it.
"""

from __future__ import annotations

import contextvars
import os
import re

HEADER = "x-request-id"
MAX_LENGTH = 128
_USABLE = re.compile(rf"[A-Za-z0-9._:/+=-]{{1,{MAX_LENGTH}}}")

_current: contextvars.ContextVar[str] = contextvars.ContextVar("seatwise_request_id", default="")


def generate() -> str:
    """A new id: 96 random bits in hex."""
    return os.urandom(12).hex()


def accept(sent: str | bytes | None) -> str:
    """``sent`` when it is a usable id, else a generated one."""
    if isinstance(sent, str) and _USABLE.fullmatch(sent):
        return sent
    return generate()


def current() -> str:
    """The id of the call being served ("" outside a call)."""
    return _current.get()


def set_current(request_id: str) -> None:
    """For the current call's task (grpc.aio runs each call in a task of its own)."""
    _current.set(request_id)
