"""Walk-in fridge and freezer physics: heat leaks in, the compressor pulls it out. Pure.

The cabinet air gains heat from the kitchen through the walls (slowly) and through an open door
(fast), and loses it to the evaporator while the fan runs. The compressor is a thermostat with a
differential: it starts at ``setpoint + differential`` and stops at the set point, pulling the
evaporator about ten degrees below the set point. A defrost every ``defrost_interval_h`` stops
the compressor and heats the evaporator for a while, so the air warms a little: the kind of
excursion that must not raise an alarm (DOMAIN.md). The device's own high alarm waits
``alarm_delay_min`` before it sets, as real controllers do.

Numbers (time constants in seconds) give a fridge that holds 3 °C with the compressor running a
sixth of the time, reaches ~7 °C with the door left open, and drifts up by ~5 °C in the first
hour after a compressor failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulators.appliances.physics import KITCHEN_C, ApplianceModel, lag

if TYPE_CHECKING:
    from simulators.appliances.registers import RegisterBank

__all__ = ["ColdRoomModel", "ColdRoomTuning"]


@dataclass(frozen=True, slots=True)
class ColdRoomTuning:
    """Thermal constants of a cold room (seconds and kelvin)."""

    wall_tc_s: float = 14_400.0  # heat leak through the walls
    door_tc_s: float = 1_200.0  # extra exchange with the kitchen while the door is open
    coil_tc_s: float = 900.0  # exchange with the evaporator while the fan runs
    evap_below_set_k: float = 10.0  # how far below the set point the running compressor pulls
    evap_tc_s: float = 90.0  # how fast the evaporator follows
    differential_k: float = 1.5  # compressor cut-in above the set point
    defrost_s: float = 1_200.0  # length of one defrost
    defrost_coil_c: float = 10.0  # what the defrost heater warms the evaporator to
    door_alarm_s: float = 180.0  # door open longer than this sets the door alarm
    low_alarm_k: float = 4.0  # this far below the set point (for the alarm delay) is "too cold"


class ColdRoomModel(ApplianceModel):
    """A walk-in fridge or freezer (profiles ``walkin-fridge`` and ``freezer``).

    Example::

        model = ColdRoomModel(RegisterBank(profile))
        model.open_door()
        model.step(600)            # ten minutes with the door open
        bank.get("cabinet_temp")   # warmer

    Args:
        bank: the device's registers; the set point and limits in it are kept when non-zero
            (a restarted simulator keeps what the gateway wrote), else given defaults.
        ambient_c: kitchen temperature.
        tuning: thermal constants.
    """

    points = (
        "cabinet_temp", "evaporator_temp", "door_open", "compressor_running", "defrost_active",
        "high_temp_alarm", "low_temp_alarm", "door_alarm", "compressor_fault", "compressor_hours",
        "setpoint", "high_alarm_limit", "defrost_interval_h", "alarm_delay_min",
    )  # fmt: skip

    def __init__(
        self,
        bank: RegisterBank,
        *,
        ambient_c: float = KITCHEN_C,
        tuning: ColdRoomTuning | None = None,
    ) -> None:
        """Start closed, at the set point, with the compressor off."""
        super().__init__(bank, ambient_c=ambient_c)
        self.tuning = tuning or ColdRoomTuning()
        freezer = bank.profile.profile.kind == "freezer"
        defaults = {
            "setpoint": -20.0 if freezer else 3.0,
            "high_alarm_limit": -15.0 if freezer else 8.0,
            "defrost_interval_h": 8 if freezer else 6,
            "alarm_delay_min": 30,
        }
        for point_id, value in defaults.items():
            if bank.number(point_id) == 0:
                bank.set(point_id, value)
        self._settings()
        self.cabinet_c = self.setpoint_c + 0.5
        self.evaporator_c = self.cabinet_c
        self.door_open = False
        self.compressor_on = False
        self.compressor_failed = False
        self.defrost_left_s = 0.0
        self.since_defrost_s = 0.0
        self.compressor_s = 0.0
        self.door_open_s = 0.0
        self.too_warm_s = 0.0
        self.too_cold_s = 0.0
        self._publish()

    # ---- things that happen to it ----------------------------------------------------------

    def open_door(self) -> None:
        """Someone opens the door (and keeps it open until :meth:`close_door`)."""
        self.door_open = True

    def close_door(self) -> None:
        """The door is shut again."""
        self.door_open = False
        self.door_open_s = 0.0

    def fail_compressor(self) -> None:
        """The compressor stops for good (motor protection tripped, say)."""
        self.compressor_failed = True

    def repair_compressor(self) -> None:
        """The engineer has been."""
        self.compressor_failed = False

    def start_defrost(self) -> None:
        """Start a defrost now (as the controller does every ``defrost_interval_h``)."""
        self.defrost_left_s = self.tuning.defrost_s
        self.since_defrost_s = 0.0

    # ---- physics ---------------------------------------------------------------------------

    def _settings(self) -> None:
        self.setpoint_c = self.bank.number("setpoint")
        self.high_limit_c = self.bank.number("high_alarm_limit")
        self.defrost_every_s = self.bank.number("defrost_interval_h") * 3600.0
        self.alarm_delay_s = self.bank.number("alarm_delay_min") * 60.0

    def _advance(self, dt_s: float) -> None:
        t = self.tuning
        self._defrost_clock(dt_s)
        defrosting = self.defrost_left_s > 0
        if defrosting or self.compressor_failed:
            self.compressor_on = False
        elif self.cabinet_c >= self.setpoint_c + t.differential_k:
            self.compressor_on = True
        elif self.cabinet_c <= self.setpoint_c:
            self.compressor_on = False
        if self.compressor_on:
            self.compressor_s += dt_s
            coil_target = self.setpoint_c - t.evap_below_set_k
            self.evaporator_c = lag(self.evaporator_c, coil_target, dt_s, t.evap_tc_s)
        elif defrosting:
            self.evaporator_c = lag(self.evaporator_c, t.defrost_coil_c, dt_s, t.evap_tc_s * 2)
        else:
            self.evaporator_c = lag(self.evaporator_c, self.cabinet_c, dt_s, t.evap_tc_s)
        # Heat flows, each a conductance (1/tc) times a temperature difference.
        fan = 0.25 if defrosting else 1.0  # the evaporator fan stops during a defrost
        flow = (self.ambient_c - self.cabinet_c) / t.wall_tc_s
        flow += (self.evaporator_c - self.cabinet_c) * fan / t.coil_tc_s
        if self.door_open:
            flow += (self.ambient_c - self.cabinet_c) / t.door_tc_s
            self.door_open_s += dt_s
        self.cabinet_c += flow * dt_s
        self._alarm_clocks(dt_s)

    def _defrost_clock(self, dt_s: float) -> None:
        if self.defrost_left_s > 0:
            self.defrost_left_s = max(0.0, self.defrost_left_s - dt_s)
            return
        self.since_defrost_s += dt_s
        if self.since_defrost_s >= self.defrost_every_s:
            self.start_defrost()

    def _alarm_clocks(self, dt_s: float) -> None:
        if self.cabinet_c > self.high_limit_c:
            self.too_warm_s += dt_s
        else:
            self.too_warm_s = 0.0
        if self.cabinet_c < self.setpoint_c - self.tuning.low_alarm_k:
            self.too_cold_s += dt_s
        else:
            self.too_cold_s = 0.0

    def _publish(self) -> None:
        b = self.bank
        b.set("cabinet_temp", self.cabinet_c)
        b.set("evaporator_temp", self.evaporator_c)
        b.set("door_open", self.door_open)
        b.set("compressor_running", self.compressor_on)
        b.set("defrost_active", self.defrost_left_s > 0)
        # The delay counts "longer than": with no delay, any time above the limit alarms.
        b.set("high_temp_alarm", self.too_warm_s > 0 and self.too_warm_s >= self.alarm_delay_s)
        b.set("low_temp_alarm", self.too_cold_s > 0 and self.too_cold_s >= self.alarm_delay_s)
        b.set("door_alarm", self.door_open_s > self.tuning.door_alarm_s)
        b.set("compressor_fault", self.compressor_failed)
        b.set("compressor_hours", self.compressor_s / 3600.0)
