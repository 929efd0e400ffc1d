"""A local Redis Cluster (3 masters, optionally replicas) that the test suite starts itself.

Three ``redis-server`` processes (and ``replicas`` more per master, for the
failover tests) (the binary of
:func:`server.redis_process.find_redis_server`) listen on free TCP ports of
127.0.0.1 with ``--cluster-enabled yes``, AOF on and their cluster config file
in their own temporary directory. The cluster is formed with
``redis-cli --cluster create ... --cluster-replicas N --cluster-yes`` when a
``redis-cli`` is found next to ``redis-server`` (or on PATH), else by hand over
redis-py: ADDSLOTS, SET-CONFIG-EPOCH, MEET and CLUSTER REPLICATE, which is what
``redis-cli`` does. Either way :meth:`LocalCluster.start` returns only once every
node reports ``cluster_state:ok``, knows every node and serves all 16384 slots,
and every replica's link to its master is up, so the first test never sees
CLUSTERDOWN.

Failover tests use :meth:`LocalCluster.master_of`, :meth:`~LocalCluster.replica_of`,
:meth:`~LocalCluster.pause` / :meth:`~LocalCluster.resume` (SIGSTOP/SIGCONT),
:meth:`~LocalCluster.kill` (SIGKILL) and :meth:`~LocalCluster.restart` (the killed
node rejoins, as a replica of whoever was promoted), and wait for what they
observe (:meth:`~LocalCluster.wait_slot_served_by`, :meth:`~LocalCluster.wait_replica_online`).

A master refuses to report ``ok`` until 2 s after it started (Redis's
``CLUSTER_WRITABLE_DELAY``), so starting takes a little over 2 s.

Ports are picked by binding port 0; the cluster bus listens on port + 10000,
so a port is only taken when both are free. Another process could grab one in
between: a node that exits at startup makes the whole start retry on new ports.

Run ``python -m tests.cluster`` to start one by hand (prints its URL, Ctrl-C stops).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import redis

from server.redis_process import find_redis_server

SLOTS = 16384
BUS_PORT_OFFSET = 10000  # Redis < 7 has no cluster-port setting: the bus is always port + 10000
STARTUP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3


class ClusterError(RuntimeError):
    """The local cluster could not be started."""


def find_redis_cli(redis_server: str) -> str | None:
    """The redis-cli beside ``redis_server`` (same version), else the one on PATH."""
    beside = Path(redis_server).with_name("redis-cli")
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("redis-cli")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` whose cluster-bus port (+10000) is free too."""
    ports: list[int] = []
    with ExitStack() as held:  # keep every probe socket open so no port is handed out twice
        for _ in range(200):
            if len(ports) == count:
                return ports
            probe = held.enter_context(socket.socket())
            probe.bind((host, 0))
            port = probe.getsockname()[1]
            if port + BUS_PORT_OFFSET > 65535:
                continue
            bus = held.enter_context(socket.socket())
            try:
                bus.bind((host, port + BUS_PORT_OFFSET))
            except OSError:
                continue
            ports.append(port)
    raise ClusterError(f"could not find {count} free port pairs on {host}")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Contiguous, inclusive slot ranges covering 0..16383, as even as possible."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


class LocalCluster:
    """``masters`` redis-server processes on 127.0.0.1 formed into one cluster."""

    def __init__(
        self,
        data_dir: Path,
        *,
        masters: int = 3,
        appendfsync: str = "always",
        host: str = "127.0.0.1",
        use_redis_cli: bool | None = None,
        replicas: int = 0,
        node_timeout_ms: int = 5000,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.masters = masters
        self.replicas = replicas  # per master
        self.node_timeout_ms = node_timeout_ms
        self.appendfsync = appendfsync
        self.host = host
        self.ports: list[int] = []
        self.formed_with = ""  # "redis-cli" or "redis-py", for the logs
        self._use_redis_cli = use_redis_cli  # None: redis-cli when one is found
        self._processes: dict[int, subprocess.Popen[bytes]] = {}  # port -> process
        self._binary = ""
        self._attempt = 0

    @property
    def url(self) -> str:
        """The URL :func:`holds.redis_client.connect` takes (any node is a startup node)."""
        return f"redis+cluster://{self.host}:{self.ports[0]}"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(self.host, p) for p in self.ports]

    @property
    def nodes(self) -> int:
        return self.masters * (1 + self.replicas)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        binary = self._binary = find_redis_server()
        last: Exception | None = None
        for _ in range(START_ATTEMPTS):
            try:
                self._start_once(binary)
                return
            except ClusterError as exc:  # most likely a port taken between probe and bind
                last = exc
                self.stop()
        raise ClusterError(f"local Redis Cluster did not start after {START_ATTEMPTS} attempts: {last}")

    def _start_once(self, binary: str) -> None:
        self._attempt += 1
        self.ports = free_ports(self.nodes, self.host)
        for port in self.ports:
            self._processes[port] = self._spawn(binary, port)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for port in self.ports:
            self._wait_for_ping(port, deadline)
        cli = find_redis_cli(binary) if self._use_redis_cli is not False else None
        if self._use_redis_cli and cli is None:
            raise ClusterError("redis-cli requested but none found")
        if cli is not None:
            self._create_with_redis_cli(cli, deadline)
            self.formed_with = "redis-cli"
        else:
            self._create_with_redis_py()
            self.formed_with = "redis-py"
        self._wait_until_ok(deadline)

    def _node_dir(self, port: int) -> Path:
        path = self.data_dir / f"attempt{self._attempt}" / f"node-{port}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _spawn(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        node_dir = self._node_dir(port)
        args = [
            binary,
            "--port", str(port),
            "--bind", self.host,
            "--protected-mode", "no",
            "--dir", str(node_dir),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node_dir / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--repl-diskless-sync-delay", "0",  # a replica's full sync starts at once (default 5 s)
            # CLUSTER SLOTS lists a replica once its offset (gossiped) moved: the master's
            # pings to replicas move it when nothing is written (default every 10 s)
            "--repl-ping-replica-period", "1",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(node_dir / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(self.host, port, socket_timeout=5.0, socket_connect_timeout=5.0)

    def _check_processes(self) -> None:
        for port, process in self._processes.items():
            if process.poll() is not None:
                log = self._node_dir(port) / "redis.log"
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise ClusterError(f"redis-server on port {port} exited with {process.returncode}: {tail}")

    def _wait_for_ping(self, port: int, deadline: float) -> None:
        with self._client(port) as client:
            while True:
                self._check_processes()
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise ClusterError(f"redis-server on port {port} did not answer")
                time.sleep(0.01)

    def _create_with_redis_cli(self, cli: str, deadline: float) -> None:
        args = [cli, "--cluster", "create", *(f"{h}:{p}" for h, p in self.addresses),
                "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        try:
            done = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=max(deadline - time.monotonic(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError("redis-cli --cluster create timed out") from exc
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")[-1000:]
            raise ClusterError(f"redis-cli --cluster create failed ({done.returncode}): {out}")

    def _create_with_redis_py(self) -> None:
        """What ``redis-cli --cluster create`` does: slots, distinct config epochs, MEET,
        then each replica REPLICATEs its master (master i gets ports masters + i, ...)."""
        first, *others = self.ports
        masters = self.ports[: self.masters]
        for epoch, (port, (lo, hi)) in enumerate(zip(masters, slot_ranges(self.masters), strict=True), 1):
            with self._client(port) as client:
                # ADDSLOTSRANGE needs Redis 7; ADDSLOTS takes every slot of the range.
                client.execute_command("CLUSTER ADDSLOTS", *range(lo, hi + 1))
                # distinct epochs up front, so no epoch-collision round is needed
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
        with self._client(first) as client:
            for port in others:
                client.execute_command("CLUSTER MEET", self.host, port)
        if self.replicas:
            ids = {}
            for port in masters:
                with self._client(port) as client:
                    ids[port] = _text(client.execute_command("CLUSTER MYID"))
            for i, port in enumerate(self.ports[self.masters :]):
                master = masters[i % self.masters]
                with self._client(port) as client:
                    deadline = time.monotonic() + STARTUP_TIMEOUT_S
                    while True:  # the replica must have heard of its master through MEET first
                        try:
                            client.execute_command("CLUSTER REPLICATE", ids[master])
                            break
                        except redis.ResponseError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.05)

    def _node_ready(self, port: int) -> bool:
        with self._client(port) as client:
            info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
            fields = {_text(k): _text(v) for k, v in info.items()}
            if fields.get("cluster_state") != "ok" or fields.get("cluster_slots_ok") != str(SLOTS):
                return False
            if fields.get("cluster_known_nodes") != str(self.nodes):
                return False
            # every node must route every slot to a node whose address it knows,
            # and know each master's replicas
            slots = client.execute_command("CLUSTER SLOTS")
            covered = sum(int(end) - int(start) + 1 for start, end, *_ in slots)
            if covered != SLOTS or len(slots) != self.masters:
                return False
            if any(len(nodes) != 1 + self.replicas for _start, _end, *nodes in slots):
                return False
            info = client.info("replication")
            if info.get("role") == "master":
                return self._online_replicas(info) >= self.replicas
            return info.get("master_link_status") == "up"

    @staticmethod
    def _online_replicas(info: dict[str, object]) -> int:
        """Replicas connected and online, from a master's INFO replication (parsed by redis-py)."""
        count = 0
        for key, value in info.items():
            if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online":
                count += 1
        return count

    def _wait_until_ok(self, deadline: float) -> None:
        pending = list(self.ports)
        while pending:
            self._check_processes()
            with suppress(redis.ConnectionError, redis.TimeoutError):
                pending = [p for p in pending if not self._node_ready(p)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster not ok on ports {pending} after {STARTUP_TIMEOUT_S:.0f}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every node (they flush their AOF), SIGKILL any that lingers."""
        for process in self._processes.values():
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)  # a paused node cannot handle SIGTERM
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes = {}

    @property
    def running(self) -> bool:
        return bool(self._processes) and all(p.poll() is None for p in self._processes.values())

    # -- failovers (tests/server/test_failover.py, scripts/bench/failover.py) ----
    def live_ports(self) -> list[int]:
        return [port for port, process in self._processes.items() if process.poll() is None]

    def _ask(self, *command: object, port: int | None = None) -> object:
        """``command`` on ``port``, or on the first live node that answers."""
        last: Exception | None = None
        for candidate in [port] if port is not None else self.live_ports():
            try:
                with self._client(candidate) as client:
                    return client.execute_command(*command)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                last = exc
        raise ClusterError(f"no node answered {command[0]!r}: {last}")

    def slot_of(self, key: str) -> int:
        return int(self._ask("CLUSTER", "KEYSLOT", key))  # type: ignore[call-overload]

    def slot_owners(self, port: int | None = None) -> dict[tuple[int, int], list[int]]:
        """Slot range -> [master port, replica ports...], as ``port`` (or any node) sees it."""
        slots = self._ask("CLUSTER", "SLOTS", port=port)
        assert isinstance(slots, list)
        return {(int(lo), int(hi)): [int(node[1]) for node in nodes] for lo, hi, *nodes in slots}

    def master_of(self, slot: int, port: int | None = None) -> int:
        for (lo, hi), nodes in self.slot_owners(port).items():
            if lo <= slot <= hi:
                return nodes[0]
        raise ClusterError(f"slot {slot} is not served")

    def replica_of(self, master: int) -> int:
        """A replica of ``master`` whose link is up (as ``master`` reports it)."""
        with self._client(master) as client:
            info = client.info("replication")
        for key, value in info.items():
            if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online":
                return int(str(value["port"]))
        raise ClusterError(f"master {master} has no online replica")

    def _signal(self, port: int, sig: signal.Signals) -> None:
        process = self._processes[port]
        if process.poll() is None:
            os.kill(process.pid, sig)

    def pause(self, port: int) -> None:
        """SIGSTOP: the node stops answering (and replicating) but keeps its sockets."""
        self._signal(port, signal.SIGSTOP)

    def cut_replication(self, master: int) -> None:
        """Close ``master``'s links to its replicas (``CLIENT KILL TYPE replica``). With the
        replica paused first, what the master writes from now on never reaches it (a
        paused replica still applies what already sat in its socket buffer when resumed;
        it reconnects only to a master that is still there)."""
        with self._client(master) as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")

    def resume(self, port: int) -> None:
        self._signal(port, signal.SIGCONT)

    def kill(self, port: int) -> None:
        """SIGKILL, as a crash would."""
        process = self._processes[port]
        if process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and directory (its nodes.conf): a former
        master whose replica was promoted rejoins as a replica of the new master."""
        self.kill(port)
        self._processes[port] = self._spawn(self._binary, port)

    def wait_slot_served_by(self, slot: int, port: int, within_s: float) -> None:
        """Until every live node reports ``cluster_state:ok`` and names ``port`` as the
        master of ``slot`` (a failover completed, as clients will see it)."""
        deadline = time.monotonic() + within_s
        while True:
            with suppress(redis.ConnectionError, redis.TimeoutError, ClusterError):
                if all(self._serves(p, slot, port) for p in self.live_ports()):
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"slot {slot} not served by {port} within {within_s:.0f}s")
            time.sleep(0.05)

    def _serves(self, at: int, slot: int, port: int) -> bool:
        with self._client(at) as client:
            info = client.execute_command("CLUSTER INFO")
        if _text(info.get(b"cluster_state", info.get("cluster_state"))) != "ok":
            return False
        return self.master_of(slot, at) == port

    def wait_replica_online(self, master: int, replica: int, within_s: float) -> None:
        """Until ``master`` reports ``replica`` connected and online (its full sync done)."""
        deadline = time.monotonic() + within_s
        while True:
            with suppress(redis.ConnectionError, redis.TimeoutError, ClusterError):
                if self.replica_of(master) == replica:
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"{replica} not an online replica of {master} within {within_s:.0f}s")
            time.sleep(0.05)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:  # pragma: no cover - a convenience for manual runs
    with tempfile.TemporaryDirectory(prefix="seatwise-cluster-") as tmp:
        started = time.monotonic()
        with LocalCluster(Path(tmp)) as cluster:
            took = time.monotonic() - started
            print(f"{cluster.url}  (formed with {cluster.formed_with} in {took:.2f}s; Ctrl-C stops)")
            with suppress(KeyboardInterrupt):
                while cluster.running:
                    time.sleep(0.5)


if __name__ == "__main__":
    main()
