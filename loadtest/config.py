"""What the runner hands to Locust: environment variables and the setup file.

The runner (or a person running Locust by hand) provisions one on-sale event
(:mod:`loadtest.provision`) and writes a :class:`SetupInfo` JSON file; every
Locust process reads it through ``SEATWISE_LOADTEST_SETUP``. Per-process
output (raw timings, acknowledged commits) goes to ``SEATWISE_LOADTEST_OUT``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec

ENV_SETUP = "SEATWISE_LOADTEST_SETUP"  # path of the setup JSON (required by the users)
ENV_SCENARIO = "SEATWISE_LOADTEST_SCENARIO"  # scenario name (loadtest/scenarios.py)
ENV_OUT = "SEATWISE_LOADTEST_OUT"  # directory for raw-*.tsv and acks-*.jsonl (default: .)
ENV_CHANNELS = "SEATWISE_LOADTEST_CHANNELS"  # gRPC connections per Locust process (default 8)
ENV_SESSIONS = "SEATWISE_LOADTEST_SESSIONS"  # sales sessions per Locust process's gateway (default 4)
ENV_SHAPE = "SEATWISE_LOADTEST_SHAPE"  # override the scenario's load shape: spike | step | soak

RAW_PREFIX = "raw-"  # raw-<pid>.tsv: one line per request (see loadtest/recording.py)
ACKS_PREFIX = "acks-"  # acks-<pid>.jsonl: one line per commit acknowledged to a client


class HotRow(msgspec.Struct, frozen=True):
    """One front row of a best section: its seat ids in seat order (neighbours are adjacent)."""

    section_id: str
    row_id: str
    seat_ids: list[str]


class SetupInfo(msgspec.Struct, frozen=True):
    """One provisioned on-sale event and the keys to reach it."""

    target: str  # host:port of the service
    tenant_id: str
    organizer_key: str
    storefront_key: str
    venue: str
    seat_map_id: str
    seat_map_version: int
    event_id: str
    hold_ttl_s: float
    seat_count: int
    prices: dict[str, int]  # category -> minor units
    sections_by_category: dict[str, list[str]]
    hot_category: str  # the most expensive seated category
    hot_rows: list[HotRow]  # the front rows of its sections
    ga_areas: dict[str, int]  # area id -> capacity
    created_ms: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SetupInfo)


def save_setup(info: SetupInfo, path: Path) -> None:
    path.write_bytes(msgspec.json.format(_encoder.encode(info), indent=1))


def load_setup(path: Path) -> SetupInfo:
    return _decoder.decode(path.read_bytes())


def setup_from_env() -> SetupInfo:
    """The setup named by the environment (read once per process: every user shares it)."""
    raw = os.environ.get(ENV_SETUP)
    if not raw:
        raise RuntimeError(f"{ENV_SETUP} must name the setup JSON written by `python -m loadtest.provision`")
    return _load_cached(raw)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> SetupInfo:
    return load_setup(Path(path))


def out_dir_from_env() -> Path:
    path = Path(os.environ.get(ENV_OUT) or ".")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _count_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return max(1, int(raw)) if raw else default


def channels_from_env(default: int = 8) -> int:
    return _count_from_env(ENV_CHANNELS, default)


def sessions_from_env(default: int = 4) -> int:
    return _count_from_env(ENV_SESSIONS, default)
