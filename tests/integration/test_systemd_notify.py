"""Under systemd: READY=1 once every service is ready, watchdog pings, STOPPING=1 on the way out.

systemd is played by a datagram socket in a temporary directory, named in ``$NOTIFY_SOCKET``
as systemd does for a ``Type=notify`` unit, with ``$WATCHDOG_USEC`` set; the gateway is the real
process, stopped with SIGTERM as ``systemctl stop`` does.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.gateway_process import GatewayProcess

if TYPE_CHECKING:
    from gateway.transport.broker import MosquittoProcess

pytestmark = pytest.mark.integration

SITE = Path(__file__).with_name("fast-site.toml")


def _messages(sock: socket.socket, until: float) -> list[str]:
    out: list[str] = []
    while time.monotonic() < until:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if "STOPPING=1" in out[-1]:
            break
    return out


def test_the_gateway_tells_systemd_it_is_ready_alive_and_stopping(
    broker: MosquittoProcess, tmp_path: Path
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(0.2)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}  # pings every 0.2 s
        gateway = GatewayProcess(SITE, broker.url, tmp_path / "state", env=env)
        gateway.start()
        first = sock.recv(4096).decode()  # sent once ready: start() has seen "ready on"
        time.sleep(1.0)
        code = gateway.stop()
        rest = _messages(sock, time.monotonic() + 5)
    assert code == 0
    lines = first.splitlines()
    assert "READY=1" in lines
    assert any(line.startswith("STATUS=site itest: ") and "orders" in line for line in lines)
    pings = sum(m.splitlines().count("WATCHDOG=1") for m in rest)
    assert pings >= 3, rest
    assert "STOPPING=1" in rest[-1].splitlines()
