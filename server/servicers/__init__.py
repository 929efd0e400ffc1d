"""gRPC servicers: translate protos to calls on holds/ and seatmap/, nothing more."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
