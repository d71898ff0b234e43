"""Simulated Modbus devices for the polling bench: ``count`` pymodbus servers on consecutive ports.

Run as its own process (``python bench/polling/servers.py BASE_PORT COUNT``) so that the servers'
CPU is never charged to the gateway side. Each server is one device (unit 1) with 10 holding
registers at 0..9. Prints ``ready`` once every port listens, then serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import uvloop
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

HOST = "127.0.0.1"


def device() -> SimDevice:
    bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    hr = [
        SimData(0, values=[215, 1800, 3, 0, 42, 7, 100, 65535, 12, 1], datatype=DataType.REGISTERS)
    ]
    ir = [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)]
    return SimDevice(id=1, simdata=(bits, bits, hr, ir))


async def serve(base: int, count: int) -> None:
    servers = []
    for port in range(base, base + count):
        server = ModbusTcpServer(device(), address=(HOST, port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            sys.exit(f"cannot listen on {HOST}:{port} (in use?)")
        servers.append(server)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the parent closes our stdin (or dies): no stray servers after a crash.
    await loop.run_in_executor(None, sys.stdin.read)
    for server in servers:
        await server.shutdown()


if __name__ == "__main__":
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
