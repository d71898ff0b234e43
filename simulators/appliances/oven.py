"""Combi oven physics: cabinet heats, humidity follows the mode, the core probe lags. Pure.

Writing a program number (holding register ``program``) starts that program: it sets the
cabinet temperature, humidity and core target the way the oven's own panel would, picks the
mode, and runs either for a fixed time or until the core probe reaches its target. Program 0
stops. An open door dumps heat and steam quickly; a core probe in cold food warms slowly towards
the cabinet temperature.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from simulators.appliances.physics import KITCHEN_C, ApplianceModel, ErrorLog, lag

if TYPE_CHECKING:
    from gateway.devices.codec import Value
    from simulators.appliances.registers import RegisterBank

__all__ = ["OvenMode", "OvenModel", "OvenProgram"]

HEAT_C_PER_S = 1.5
LOSS_TC_S = 1_200.0
DOOR_TC_S = 60.0
CORE_TC_S = 3_600.0  # a tray of chicken legs
HUMIDITY_TC_S = 60.0
DRY_HUMIDITY = 10.0  # hot air dries the cabinet
ROOM_HUMIDITY = 40.0
ERROR_PROBE = 34  # core probe program started without a probe


class OvenMode(IntEnum):
    """Values of ``mode``."""

    OFF = 0
    HOT_AIR = 1
    STEAM = 2
    COMBI = 3
    CLEANING = 4
    COOL_DOWN = 5
    ERROR = 6


@dataclass(frozen=True, slots=True)
class OvenProgram:
    """A stored program: mode and set points, ended by time or by the core probe."""

    name: str
    mode: OvenMode
    cabinet_c: float
    humidity: int
    core_c: float | None = None  # ends when the core reaches this
    duration_s: float | None = None  # ends after this long


PROGRAMS: dict[int, OvenProgram] = {
    1: OvenProgram("roast", OvenMode.COMBI, 180.0, 50, core_c=72.0),
    2: OvenProgram("steam vegetables", OvenMode.STEAM, 100.0, 100, duration_s=720.0),
    3: OvenProgram("bake", OvenMode.HOT_AIR, 170.0, 0, duration_s=1_500.0),
    4: OvenProgram("regenerate", OvenMode.COMBI, 140.0, 60, core_c=75.0),
}
#: Programs 5..20 are user programs: hot air at the current set point for 20 minutes.
USER_PROGRAM_S = 1_200.0


class OvenModel(ApplianceModel):
    """A combi oven (profile ``combi-oven``)."""

    points = (
        "cabinet_set_temp", "core_set_temp", "humidity_set", "program", "mode", "cabinet_temp",
        "core_temp", "humidity", "program_remaining", "door_open", "core_probe_in", "heating",
        *(f"error_{i}" for i in range(1, 6)),
    )  # fmt: skip

    def __init__(self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C) -> None:
        """Start off and cold, door shut, probe in its holder."""
        super().__init__(bank, ambient_c=ambient_c)
        if bank.number("cabinet_set_temp") == 0:
            bank.set("cabinet_set_temp", 160.0)
        if bank.number("core_set_temp") == 0:
            bank.set("core_set_temp", 72.0)
        self.mode = OvenMode.OFF
        self.cabinet_c = ambient_c
        self.core_c = ambient_c
        self.humidity = ROOM_HUMIDITY
        self.door_open = False
        self.probe_in = False
        self.heating = False
        self.remaining_s = 0.0
        self.ends_on_core = False
        self.errors = ErrorLog(5)
        self._settings()
        self._publish()

    # ---- things that happen to it ----------------------------------------------------------

    def start_program(self, number: int) -> None:
        """Start program ``number`` (0 stops), as writing the ``program`` register does."""
        if number == 0:
            self.stop()
            return
        program = PROGRAMS.get(number)
        if program is None:
            self.mode, self.remaining_s, self.ends_on_core = OvenMode.HOT_AIR, USER_PROGRAM_S, False
            return
        if program.core_c is not None and not self.probe_in:
            self.errors.push(ERROR_PROBE)
            self.stop()
            return
        self.bank.set("cabinet_set_temp", program.cabinet_c)
        self.bank.set("humidity_set", program.humidity)
        if program.core_c is not None:
            self.bank.set("core_set_temp", program.core_c)
        self._settings()
        self.mode = program.mode
        self.ends_on_core = program.core_c is not None
        self.remaining_s = program.duration_s or 0.0

    def stop(self) -> None:
        """Stop cooking: the fan cools the cabinet down if it is hot."""
        self.mode = OvenMode.COOL_DOWN if self.cabinet_c > 60.0 else OvenMode.OFF
        self.remaining_s, self.ends_on_core = 0.0, False
        self.bank.set("program", 0)

    def open_door(self) -> None:
        """Someone opens the door."""
        self.door_open = True

    def close_door(self) -> None:
        """The door is shut again."""
        self.door_open = False

    def insert_probe(self, food_c: float = 4.0) -> None:
        """Put the core probe into food at ``food_c`` (straight from the fridge by default)."""
        self.probe_in, self.core_c = True, food_c

    def remove_probe(self) -> None:
        """Take the probe out and put it back in its holder."""
        self.probe_in = False

    def raise_error(self, code: int) -> None:
        """Log an error code and stop."""
        self.errors.push(code)
        self.mode, self.remaining_s, self.ends_on_core = OvenMode.ERROR, 0.0, False

    # ---- physics ---------------------------------------------------------------------------

    def _on_write(self, point_id: str, value: Value) -> None:
        if point_id == "program" and isinstance(value, int):
            self.start_program(value)

    def _settings(self) -> None:
        self.set_c = self.bank.number("cabinet_set_temp")
        self.core_set_c = self.bank.number("core_set_temp")
        self.humidity_set = self.bank.number("humidity_set")

    def _advance(self, dt_s: float) -> None:
        cooking = self.mode in (OvenMode.HOT_AIR, OvenMode.STEAM, OvenMode.COMBI)
        target = min(self.set_c, 100.0) if self.mode is OvenMode.STEAM else self.set_c
        if not cooking or self.door_open:
            self.heating = False  # the door switch cuts the heaters
        elif self.cabinet_c < target - 2.0:
            self.heating = True
        elif self.cabinet_c >= target:
            self.heating = False
        loss_tc = DOOR_TC_S if self.door_open else LOSS_TC_S
        if self.mode is OvenMode.COOL_DOWN:
            loss_tc = min(loss_tc, 300.0)  # the fan runs with the vents open
        heat = HEAT_C_PER_S if self.heating else 0.0
        self.cabinet_c += (heat - (self.cabinet_c - self.ambient_c) / loss_tc) * dt_s
        self.humidity = lag(self.humidity, self._humidity_target(), dt_s, HUMIDITY_TC_S)
        core_target = self.cabinet_c if self.probe_in else self.ambient_c
        self.core_c = lag(self.core_c, core_target, dt_s, CORE_TC_S if self.probe_in else 120.0)
        if self.mode is OvenMode.COOL_DOWN and self.cabinet_c <= 60.0:
            self.mode = OvenMode.OFF
        if cooking:
            self._program_clock(dt_s)

    def _humidity_target(self) -> float:
        if self.door_open or self.mode in (OvenMode.OFF, OvenMode.COOL_DOWN, OvenMode.ERROR):
            return ROOM_HUMIDITY
        if self.mode is OvenMode.HOT_AIR:
            return DRY_HUMIDITY
        if self.mode is OvenMode.STEAM:
            return 100.0
        return self.humidity_set

    def _program_clock(self, dt_s: float) -> None:
        if self.ends_on_core:
            if self.probe_in and self.core_c >= self.core_set_c:
                self.stop()
        elif self.remaining_s > 0:
            self.remaining_s = max(0.0, self.remaining_s - dt_s)
            if self.remaining_s == 0:
                self.stop()

    def _publish(self) -> None:
        b = self.bank
        b.set("mode", int(self.mode))
        b.set("cabinet_temp", self.cabinet_c)
        b.set("core_temp", self.core_c)
        b.set("humidity", round(min(100.0, max(0.0, self.humidity))))
        b.set("program_remaining", round(self.remaining_s))
        b.set("door_open", self.door_open)
        b.set("core_probe_in", self.probe_in)
        b.set("heating", self.heating)
        self.errors.publish(b, "error_")
