"""One simulated appliance on loopback: a pymodbus TCP server over a register bank, with physics.

:class:`SimulatedAppliance` serves a :class:`~simulators.appliances.registers.RegisterBank` laid
out from the device's profile, steps its physics model every ``tick_s`` (simulated time runs
``speed`` times faster than real time), and can be made to fail (see
:mod:`simulators.appliances.faults`). Gateway writes land in the bank, are checked as a careful
device checks them (writable points, whole values, write ranges) and the physics reacts at its
next step.

Two hooks into pymodbus 3.16, both pinned by ``tests/integration/test_appliance_simulators.py``:

* the datastore is :class:`~simulators.appliances.datastore.BankContext`, a
  ``ModbusServerContext`` the server uses as it is, so reads and writes go straight to the bank;
* the black hole drops every outgoing frame in the server's ``trace_packet`` hook, so
  connections are accepted and requests read, but nothing is ever answered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from pymodbus.server import ModbusTcpServer

from gateway.config import DeviceInstance
from gateway.lifecycle import Service
from simulators.appliances.cold_room import ColdRoomModel
from simulators.appliances.datastore import BankContext
from simulators.appliances.dishwasher import DishwasherModel
from simulators.appliances.faults import Fault, FaultWindow
from simulators.appliances.models import model_for
from simulators.appliances.physics import ApplianceModel
from simulators.appliances.registers import RegisterBank

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.devices.profile import Profile

__all__ = ["SimulatedAppliance"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=ApplianceModel)

#: uvloop busy-waits on sleeps under 1 ms (MEASURED.md).
_MIN_TICK_S = 0.005


def _check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"simulated appliances listen on loopback only, not {host!r}")
    return host


class SimulatedAppliance(Service):
    """A Modbus TCP appliance on loopback with physics and fault injection.

    ``async with`` returns once the port accepts connections; leaving stops everything.

    Example::

        profile = load_profiles()["walkin-fridge"]
        async with SimulatedAppliance(profile, device_id="fridge-1", speed=60) as fridge:
            fridge.port                          # bound port (a free one unless given)
            fridge.model_as(ColdRoomModel).open_door()   # physics: it warms up
            fridge.hang()                        # black hole until fridge.wake()
            await fridge.go_away()               # connection refused ...
            await fridge.come_back()             # ... and back on the same port

    Args:
        profile: a Modbus profile; the register layout comes from it.
        device_id: the id in the site file (default: the profile id).
        host: loopback address to listen on.
        port: TCP port; 0 picks a free one (see :attr:`port` after entering).
        unit: Modbus unit id it answers to (others get exception 4).
        speed: simulated seconds per real second.
        tick_s: real seconds between physics steps.
        physics: False serves static registers (set them with ``bank.set``).
        faults: a schedule of faults, times relative to entering.
        model_options: keyword arguments for the model (``ambient_c``, ``hot`` for fryers ...).
        sparse: define only the registers of the profile's points, as most real controllers do:
            a read that touches any other one is refused with exception 2.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        device_id: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        unit: int = 1,
        speed: float = 1.0,
        tick_s: float = 0.1,
        physics: bool = True,
        faults: Sequence[FaultWindow] = (),
        model_options: dict[str, Any] | None = None,
        sparse: bool = False,
    ) -> None:
        """Lay out the registers and build the physics; nothing listens until ``async with``.

        Raises:
            ValueError: a non-loopback host, a bad speed or tick, or a profile the physics
                cannot drive (use ``physics=False``).
        """
        if speed <= 0 or tick_s < _MIN_TICK_S:
            raise ValueError(f"speed must be > 0 and tick_s >= {_MIN_TICK_S}")
        self.profile = profile
        self.device_id = device_id or profile.profile.id
        self.host = _check_loopback(host)
        self.port = port
        self.unit = unit
        self.speed = speed
        self.tick_s = tick_s
        self.bank = RegisterBank(profile, sparse=sparse)
        self._model = model_for(self.bank, **(model_options or {})) if physics else None
        self.physics_running = physics
        self._faults = tuple(faults)
        for w in self._faults:
            self._check_fault(w.fault, w.point)
        self._context = BankContext(self.bank, unit, lambda: self._hung)
        self._server: ModbusTcpServer | None = None
        self._hung = False
        self.name = f"appliance:{self.device_id}"

    # ---- what it is ------------------------------------------------------------------------

    @property
    def model(self) -> ApplianceModel:
        """The physics model (its methods are the things that happen in the kitchen).

        Raises:
            RuntimeError: the appliance was made with ``physics=False``.
        """
        if self._model is None:
            raise RuntimeError(f"{self.device_id} runs without physics")
        return self._model

    def model_as(self, cls: type[M]) -> M:
        """The physics model as the class the caller expects (``model_as(ColdRoomModel)``).

        Raises:
            TypeError: the model is another class (or there is none).
        """
        if not isinstance(self._model, cls):
            raise TypeError(f"{self.device_id} is driven by {type(self._model).__name__}")
        return self._model

    @property
    def hung(self) -> bool:
        """Whether it is a black hole right now."""
        return self._hung

    @property
    def gone(self) -> bool:
        """Whether its server is stopped (connections refused)."""
        return self._server is None

    def instance(self, **fields: Any) -> DeviceInstance:
        """A site-file device entry pointing at this appliance (extra fields e.g. ``station``)."""
        return DeviceInstance(
            id=self.device_id, profile=self.profile.profile.id, host=self.host,
            port=self.port, unit=self.unit, **fields,
        )  # fmt: skip

    # ---- faults ----------------------------------------------------------------------------

    def hang(self) -> None:
        """Keep accepting connections but never answer (and never apply writes)."""
        if not self._hung:
            log.info("%s: hanging (black hole)", self.device_id)
        self._hung = True

    def wake(self) -> None:
        """Answer again after :meth:`hang`."""
        self._hung = False

    async def go_away(self) -> None:
        """Stop the server: open connections drop and new ones are refused."""
        if self._server is not None:
            log.info("%s: gone from port %d", self.device_id, self.port)
        await self._stop_server()

    async def come_back(self) -> None:
        """Start the server again on the same port (no-op if it runs).

        Raises:
            OSError: the port was taken meanwhile.
        """
        if self._server is None:
            await self._listen()

    def stick(self, point_id: str) -> None:
        """Freeze one point at its current value (a stuck sensor)."""
        self.bank.stick(point_id)

    def unstick(self, point_id: str) -> None:
        """Let a stuck point follow the physics again."""
        self.bank.unstick(point_id)

    async def inject(self, fault: Fault, point: str | None = None) -> None:
        """Start a fault by name (``point`` for ``stuck``).

        Raises:
            ValueError: the fault does not apply to this appliance.
        """
        self._check_fault(fault, point)
        if fault is Fault.HANG:
            self.hang()
        elif fault is Fault.GONE:
            await self.go_away()
        elif fault is Fault.STUCK and point is not None:
            self.stick(point)
        elif fault is Fault.COMPRESSOR and isinstance(self._model, ColdRoomModel):
            self._model.fail_compressor()
        elif fault is Fault.BOOSTER and isinstance(self._model, DishwasherModel):
            self._model.fail_booster()

    async def clear(self, fault: Fault, point: str | None = None) -> None:
        """End a fault started with :meth:`inject`."""
        self._check_fault(fault, point)
        if fault is Fault.HANG:
            self.wake()
        elif fault is Fault.GONE:
            await self.come_back()
        elif fault is Fault.STUCK and point is not None:
            self.unstick(point)
        elif fault is Fault.COMPRESSOR and isinstance(self._model, ColdRoomModel):
            self._model.repair_compressor()
        elif fault is Fault.BOOSTER and isinstance(self._model, DishwasherModel):
            self._model.repair_booster()

    def _check_fault(self, fault: Fault, point: str | None) -> None:
        if fault is Fault.STUCK:
            if point is None:
                raise ValueError("a stuck fault needs the point that sticks")
            self.bank.point(point)
        elif fault is Fault.COMPRESSOR and not isinstance(self._model, ColdRoomModel):
            raise ValueError(f"{self.device_id} has no compressor to fail")
        elif fault is Fault.BOOSTER and not isinstance(self._model, DishwasherModel):
            raise ValueError(f"{self.device_id} has no rinse booster to fail")

    # ---- physics ---------------------------------------------------------------------------

    def pause_physics(self) -> None:
        """Stop the timer-driven physics (registers keep what they hold)."""
        self.physics_running = False

    def resume_physics(self) -> None:
        """Start the timer-driven physics again."""
        self.physics_running = self._model is not None

    def advance(self, sim_s: float) -> None:
        """Step the physics by ``sim_s`` simulated seconds now (works while paused)."""
        self.model.step(sim_s)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the port and start the physics and fault schedule.

        Raises:
            OSError: the port is taken.
        """
        await self._listen()
        if self._model is not None:
            self.spawn(self._run_physics(), "physics")
        if self._faults:
            self.spawn(self._run_faults(), "faults")

    async def stop(self) -> None:
        """Stop the server (the physics and faults have stopped)."""
        await self._stop_server()

    async def _listen(self) -> None:
        server = ModbusTcpServer(
            self._context, address=(self.host, self.port), trace_packet=self._trace_packet
        )
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus' way of saying the bind failed
            raise OSError(f"{self.device_id}: cannot listen on {self.host}:{self.port}") from exc
        # An asyncio.Server, or uvloop's own Server class: both have sockets.
        sockets = getattr(server.transport, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._server = server

    async def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()  # type: ignore[no-untyped-call]  # closes listener and connections
        wait_closed = getattr(listener, "wait_closed", None)
        if wait_closed is not None:
            await wait_closed()

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        return b"" if sending and self._hung else data

    async def _run_physics(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            if self.physics_running and self._model is not None:
                self._model.step((now - last) * self.speed)
            last = now

    async def _run_faults(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        events: list[tuple[float, bool, FaultWindow]] = []
        for w in self._faults:
            events.append((w.start_s, True, w))
            if w.duration_s is not None:
                events.append((w.start_s + w.duration_s, False, w))
        for at, begin, w in sorted(events, key=lambda e: e[0]):
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            log.info("%s: fault %s %s", self.device_id, w.fault.value, "on" if begin else "off")
            await (self.inject if begin else self.clear)(w.fault, w.point)
