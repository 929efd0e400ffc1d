"""Service configuration: environment variables (SEATWISE_*), overridden by CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name)
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port (tests)
    # None: start and manage an embedded redis-server in data_dir.
    redis_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("var/seatwise"))
    # The bootstrap platform-admin key; None: generate one into data_dir/admin.key.
    admin_key: str | None = None
    workers: int = 1
    metrics_port: int = 0  # 0: no metrics endpoint
    log_format: str = "console"  # or "json"
    log_level: str = "info"
    grace_s: float = 10.0
    max_message_bytes: int = 64 * 1024 * 1024
    appendfsync: str = "always"  # embedded Redis only
    redis_timeout_s: float = 5.0
    # Admission control per process (server/admission.py); 0 disables a limit.
    max_inflight: int = 128
    max_loop_lag_ms: int = 500
    # Sales sessions: messages in flight per stream and per process (server/admission.py).
    session_stream_inflight: int = 256
    session_inflight: int = 4096
    # Hard cap on RPCs (streams included) a process accepts at once, counted by
    # gRPC from arrival: beyond it gRPC answers RESOURCE_EXHAUSTED itself. 0: no cap.
    max_concurrent_rpcs: int = 0
    # Replicas that must confirm a ticket change (commit, cancel) before it is
    # acknowledged (holds/durability.py); -1: 1 when the Redis has replicas, else 0.
    replica_acks: int = -1
    replica_ack_timeout_ms: int = 500
    # Organizer work (seat-map decoding and validation, rendering) runs in this many
    # processes per server process (server/heavy.py), each tenant with at most
    # heavy_per_tenant such calls in flight per server process.
    heavy_workers: int = 1
    heavy_per_tenant: int = 2
    # How long the lifecycle feed keeps entries (holds/feed/retention.py, docs/data.md).
    feed_retention_days: float = 30.0
    # Fernet key encrypting organizers' ticket signing keys at rest (holds/ticket_keys.py);
    # None: stored in the clear (a warning at startup).
    ticket_key_secret: str | None = field(default=None, repr=False)
    # TLS on the gRPC port (PEM files): on when a certificate and key are given;
    # with client_ca, clients must present a certificate it signed (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        data_dir = env.get("SEATWISE_DATA_DIR")
        return cls(
            host=env.get("SEATWISE_HOST", cls.host),
            port=_env_int("SEATWISE_PORT", cls.port),
            redis_url=env.get("SEATWISE_REDIS_URL") or None,
            data_dir=Path(data_dir) if data_dir else Path("var/seatwise"),
            admin_key=env.get("SEATWISE_ADMIN_KEY") or None,
            workers=_env_int("SEATWISE_WORKERS", cls.workers),
            metrics_port=_env_int("SEATWISE_METRICS_PORT", cls.metrics_port),
            log_format=env.get("SEATWISE_LOG_FORMAT", cls.log_format),
            log_level=env.get("SEATWISE_LOG_LEVEL", cls.log_level),
            max_inflight=_env_int("SEATWISE_MAX_INFLIGHT", cls.max_inflight),
            max_loop_lag_ms=_env_int("SEATWISE_MAX_LOOP_LAG_MS", cls.max_loop_lag_ms),
            session_stream_inflight=_env_int("SEATWISE_SESSION_STREAM_INFLIGHT", cls.session_stream_inflight),
            session_inflight=_env_int("SEATWISE_SESSION_INFLIGHT", cls.session_inflight),
            max_concurrent_rpcs=_env_int("SEATWISE_MAX_CONCURRENT_RPCS", cls.max_concurrent_rpcs),
            replica_acks=_env_int("SEATWISE_REPLICA_ACKS", cls.replica_acks),
            replica_ack_timeout_ms=_env_int("SEATWISE_REPLICA_ACK_TIMEOUT_MS", cls.replica_ack_timeout_ms),
            heavy_workers=_env_int("SEATWISE_HEAVY_WORKERS", cls.heavy_workers),
            heavy_per_tenant=_env_int("SEATWISE_HEAVY_PER_TENANT", cls.heavy_per_tenant),
            feed_retention_days=_env_float("SEATWISE_FEED_RETENTION_DAYS", cls.feed_retention_days),
            ticket_key_secret=env.get("SEATWISE_TICKET_KEY_SECRET") or None,
            tls_cert=_env_path("SEATWISE_TLS_CERT"),
            tls_key=_env_path("SEATWISE_TLS_KEY"),
            tls_client_ca=_env_path("SEATWISE_TLS_CLIENT_CA"),
        )

    def with_overrides(self, **overrides: Any) -> Config:
        """Apply CLI flags that were given (None means 'not given')."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.heavy_workers < 1 or self.heavy_per_tenant < 1:
            raise ValueError("heavy workers and heavy calls per tenant must be at least 1")
        if self.log_format not in ("console", "json"):
            raise ValueError(f"log format must be 'console' or 'json', got {self.log_format!r}")
        if self.session_stream_inflight < 1 or self.session_inflight < 1:
            raise ValueError("session in-flight caps must be at least 1")
        if self.replica_acks < -1:
            raise ValueError(f"replica acks must be -1 (auto), 0 or more, got {self.replica_acks}")
        if not 1 <= self.replica_ack_timeout_ms <= 60_000:
            raise ValueError(f"replica ack timeout must be 1-60000 ms, got {self.replica_ack_timeout_ms}")
        if not 0 < self.feed_retention_days <= 3660:
            raise ValueError(
                f"feed retention must be more than 0 and at most 3660 days, got {self.feed_retention_days}"
            )
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, got {self.appendfsync!r}")
        self._check_tls()

    def _check_tls(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key (SEATWISE_TLS_CERT, SEATWISE_TLS_KEY)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("a client CA (mutual TLS) needs TLS: set a certificate and key too")
        for path in (self.tls_cert, self.tls_key, self.tls_client_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
