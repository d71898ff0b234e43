"""Start and stop real MQTT brokers on loopback, for tests and the demo.

``MosquittoProcess`` runs the system's Mosquitto with a config we write ourselves, so the traps
listed in ``MEASURED.md`` (Nagle, the 1,000-message queue, unwritable log directories) are set
right every time. ``EmbeddedBroker`` is a pure-Python fallback (amqtt) for machines without
Mosquitto; it is slower and speaks MQTT 3.1.1 only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from gateway.errors import BrokerStartError
from gateway.lifecycle import Service

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "ChildResources", "EmbeddedBroker", "MosquittoProcess", "free_port", "free_ports", "port_free",
]  # fmt: skip

_LOOPBACK = "127.0.0.1"
_INSTALL_HINT = "install it with `apt-get install mosquitto` (Debian/Ubuntu)"


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now.

    The port is released before returning, so another process could take it in between; the
    brokers below then fail to start with a clear error rather than silently using another port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """Return ``count`` different TCP ports that are free on the loopback interface right now.

    Calling ``free_port`` in a row can hand back the same port twice (each is released before the
    next bind), so every socket is held until all are taken.
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(count)]  # fmt: skip
        for sock in socks:
            sock.bind((_LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def port_free(port: int) -> bool:
    """Whether a server could listen on ``127.0.0.1:port`` now (Mosquitto, VictoriaMetrics)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as Mosquitto and Go's listener set it: connections in TIME_WAIT after a
        # kill do not count, so a restart() on the same port works.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOOPBACK, port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name} not written)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name} empty)"


class ChildResources:
    """What a server process wrapper owns, apart from it, so a finalizer can free it.

    The finalizer is the last resort (garbage collection or interpreter exit): a server started
    for a test or the demo must never outlive the object that started it, or the next run finds
    its port taken. Used by :class:`MosquittoProcess` and ``gateway.telemetry.victoria``.
    """

    def __init__(self, prefix: str) -> None:
        """Make the server's own temporary directory (``{prefix}*``)."""
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.proc: subprocess.Popen[bytes] | None = None

    def end_process(self, sig: signal.Signals, timeout_s: float) -> None:
        """Send ``sig``, wait up to ``timeout_s``, then kill."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def release(self) -> None:
        """Kill the process and remove the directory."""
        self.end_process(signal.SIGKILL, 5.0)
        shutil.rmtree(self.dir, ignore_errors=True)


class MosquittoProcess:
    """A Mosquitto broker on ``127.0.0.1:port`` with its own directory for config, data and log.

    The directory (and so the persistence file) lives as long as this object, so ``restart()``
    after ``kill()`` or ``stop()`` comes back on the same port with the same persisted state, like
    a broker restarted by systemd.

    Example::

        with MosquittoProcess() as broker:
            run_gateway(broker.url)
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        max_inflight_messages: int = 1000,
        start_timeout_s: float = 10.0,
    ) -> None:
        """Prepare (but do not start) a broker.

        Args:
            port: loopback port to listen on; a free one is picked when None.
            max_inflight_messages: unacknowledged QoS 1/2 messages the broker sends one client
                (0 = no limit, mosquitto.conf(5)); it is also the Receive Maximum it announces
                to MQTT 5 publishers. Measured on 2.0.11: 20 (the default) caps the first
                burst to a consumer that acks late (after its commit) at 20 but, once it acks,
                releases ~20 per ack (400 after 20 acks), so it is no real bound; 20, 1000 and
                0 routed equally fast. 1000 keeps the first burst after a reconnect bounded and
                stays above our client's in-flight window.
            start_timeout_s: how long ``start()`` waits for the port to accept connections.
        """
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if binary is None:
            raise BrokerStartError(f"the `mosquitto` binary was not found on PATH: {_INSTALL_HINT}")
        self._binary = binary
        self.port = port if port is not None else free_port()
        self._start_timeout_s = start_timeout_s
        self._res = ChildResources("gateway-mosquitto-")
        self._release = weakref.finalize(self, self._res.release)
        self.dir = self._res.dir
        self.config_path = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.persistence_path = self.dir / "mosquitto.db"
        self._stderr_path = self.dir / "stderr.log"
        self.config_path.write_text(self._config(max_inflight_messages))

    def _config(self, max_inflight_messages: int) -> str:
        return "\n".join(
            [
                f"listener {self.port} {_LOOPBACK}",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.dir}/",
                # Without it Nagle's algorithm stalls QoS 1 flows by ~40 ms (MEASURED.md).
                "set_tcp_nodelay true",
                # The default (1,000) drops QoS 1 messages for a slow subscriber silently.
                "max_queued_messages 100000",
                f"max_inflight_messages {max_inflight_messages}",
                f"log_dest file {self.log_path}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                # Started as root, Mosquitto drops to the `mosquitto` user (or `nobody` if that
                # account does not exist) and then silently cannot write its log or persistence
                # file in our root-owned temp dir. Running as the current user instead needs no
                # chown, works whether or not a `mosquitto` account exists, and never gives the
                # broker more privilege than the process that started it. Ignored when not root.
                f"user {pwd.getpwuid(os.getuid()).pw_name}",
                "",
            ]
        )

    @property
    def url(self) -> str:
        """The broker's URL, ``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{_LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._res.proc is not None and self._res.proc.poll() is None

    def start(self) -> None:
        """Start the broker and return once its port accepts TCP connections.

        Raises:
            BrokerStartError: the process exited or the port did not open in time; the message
                includes the tail of the broker's log.
        """
        if self.running:
            return
        if not port_free(self.port):
            # Else our readiness probe would take the other listener for our broker.
            raise BrokerStartError(f"port {self.port} on {_LOOPBACK} is already in use")
        with self._stderr_path.open("ab") as stderr:
            proc = subprocess.Popen(  # noqa: S603 -- fixed argv, binary found by shutil.which
                [self._binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        self._res.proc = proc
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            if proc.poll() is not None:
                self._fail(f"mosquitto exited with code {proc.returncode} while starting")
            try:
                with socket.create_connection((_LOOPBACK, self.port), timeout=0.2):
                    pass
            except OSError:
                pass
            else:
                if proc.poll() is None:
                    return
            if time.monotonic() > deadline:
                self._fail(f"port {self.port} still closed after {self._start_timeout_s} s")
            time.sleep(0.01)

    def _fail(self, what: str) -> None:
        self.kill()
        raise BrokerStartError(
            f"{what}.\n--- {self.log_path} ---\n{_tail(self.log_path)}\n"
            f"--- {self._stderr_path} ---\n{_tail(self._stderr_path)}"
        )

    def kill(self) -> None:
        """Kill the broker with SIGKILL (no persistence write) and wait for it to exit."""
        self._res.end_process(signal.SIGKILL, 5.0)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker with SIGTERM, which makes it write its persistence file.

        Falls back to SIGKILL if it has not exited within ``timeout_s``.
        """
        self._res.end_process(signal.SIGTERM, timeout_s)

    def restart(self) -> None:
        """Stop the broker if it runs, then start it on the same port with the same data dir."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker (cleanly) and delete its directory."""
        try:
            self.stop()
        finally:
            self._release()

    def __enter__(self) -> Self:
        """Start the broker."""
        try:
            self.start()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker and delete its directory."""
        self.close()


class EmbeddedBroker(Service):
    """A pure-Python broker (amqtt) on loopback, for the demo on machines without Mosquitto.

    amqtt 0.12 speaks MQTT 3.1.1 only: it refuses an MQTT 5 CONNECT ("unsupported protocol
    version") or, if the CONNECT carries properties as ours do, never answers it. ``url``
    therefore carries ``?protocol=4``, which ``MqttClient`` honours, so code that just passes the
    URL along works against either broker (without MQTT 5's response topic and correlation
    data). It keeps sessions in memory only (nothing survives a restart) and moved ~6,000 msg/s
    at QoS 1 in our measurements: fine for a demo, not for a kitchen.

    Example::

        async with EmbeddedBroker() as broker:
            async with MqttClient(broker.url, "demo") as client: ...
    """

    def __init__(self, port: int | None = None) -> None:
        """Prepare (but do not start) the broker on ``port`` (a free one when None)."""
        self.port = port if port is not None else free_port()
        self._broker: Any = None

    @property
    def url(self) -> str:
        """The broker's URL, ``mqtt://127.0.0.1:PORT?protocol=4``."""
        return f"mqtt://{_LOOPBACK}:{self.port}?protocol=4"

    name = "embedded-broker"

    async def start(self) -> None:
        """Start listening; returns once the port accepts connections.

        Raises:
            BrokerStartError: amqtt is missing or could not bind the port.
        """
        try:
            # Imported here: only the fallback path pays for amqtt's slow import.
            from amqtt.broker import Broker  # noqa: PLC0415
            from amqtt.errors import BrokerError  # noqa: PLC0415
        except ImportError as exc:
            raise BrokerStartError(f"amqtt is not installed ({exc}): pip install amqtt") from exc
        anonymous = "amqtt.plugins.authentication.AnonymousAuthPlugin"
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{_LOOPBACK}:{self.port}"}},
            # Only anonymous auth: the default plugin set also publishes $SYS topics every 20 s.
            "plugins": {anonymous: {"allow_anonymous": True}},
        }
        broker = Broker(config)
        try:
            await broker.start()
        except BrokerError as exc:  # amqtt wraps bind failures (and everything else) in it
            raise BrokerStartError(f"amqtt could not start on port {self.port}: {exc}") from exc
        self._broker = broker

    async def stop(self) -> None:
        """Shut the broker down, closing every client connection."""
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
