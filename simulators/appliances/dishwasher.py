"""Dishwasher physics: fill, wash, rinse, drain; the rinse booster must reach 82 °C. Pure.

A cycle starts from idle with the hood down, by the ``start_cycle`` coil or
:meth:`DishwasherModel.start_cycle`, and runs fill -> wash -> rinse -> drain. The wash tank and
the rinse booster are thermostats; rinsing draws hot water from the booster, which sags and
recovers. The lowest rinse temperature of each cycle is reported; below 82 °C the dishes were not
sanitised and ``rinse_too_cold`` is set. Each cycle uses a little detergent and rinse aid.
Opening the hood pauses a cycle. :meth:`DishwasherModel.fail_booster` stops the booster heater.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from simulators.appliances.physics import KITCHEN_C, ApplianceModel

if TYPE_CHECKING:
    from gateway.devices.codec import Value
    from simulators.appliances.registers import RegisterBank

__all__ = ["CycleState", "DishwasherModel"]

SANITISING_RINSE_C = 82.0
WASH_HEAT_C_PER_S = 0.05
RINSE_HEAT_C_PER_S = 0.2
RINSE_DRAW_C_PER_S = 0.25  # cold inflow while the booster feeds the rinse arms
TANK_LOSS_TC_S = 7_200.0
FILL_COOLS_WASH_C = 0.5
DETERGENT_PER_CYCLE = 0.25  # % of the container
RINSE_AID_PER_CYCLE = 0.1
LOW_LEVEL = 10.0


class CycleState(IntEnum):
    """Values of ``cycle_state``."""

    IDLE = 0
    FILLING = 1
    WASHING = 2
    RINSING = 3
    DRAINING = 4
    ERROR = 5


#: How long each phase of a cycle lasts, in order, seconds.
PHASES: tuple[tuple[CycleState, float], ...] = (
    (CycleState.FILLING, 10.0),
    (CycleState.WASHING, 60.0),
    (CycleState.RINSING, 12.0),
    (CycleState.DRAINING, 8.0),
)


class DishwasherModel(ApplianceModel):
    """A hood-type dishwasher (profile ``dishwasher``)."""

    points = (
        "wash_set_temp", "rinse_set_temp", "start_cycle", "wash_temp", "rinse_temp",
        "cycle_state", "cycle_remaining", "cycle_count", "detergent_level", "rinse_aid_level",
        "rinse_too_cold", "detergent_low", "rinse_aid_low", "last_rinse_temp", "hood_open",
    )  # fmt: skip

    def __init__(self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C) -> None:
        """Start idle and hot (tanks at their set points), containers nearly full."""
        super().__init__(bank, ambient_c=ambient_c)
        if bank.number("wash_set_temp") == 0:
            bank.set("wash_set_temp", 60.0)
        if bank.number("rinse_set_temp") == 0:
            bank.set("rinse_set_temp", 85.0)
        self._settings()
        self.state = CycleState.IDLE
        self.phase = -1
        self.phase_left_s = 0.0
        self.wash_c = self.wash_set_c
        self.rinse_c = self.rinse_set_c
        self.wash_heating = self.rinse_heating = False
        self.booster_failed = False
        self.hood_open = False
        self.cycles = 0
        self.detergent = 95.0
        self.rinse_aid = 95.0
        self.lowest_rinse_c = 0.0
        self.last_rinse_c = 0.0
        self._publish()

    # ---- things that happen to it ----------------------------------------------------------

    def start_cycle(self) -> bool:
        """Start a cycle if idle with the hood down; False if the machine ignored it."""
        if self.state is not CycleState.IDLE or self.hood_open:
            return False
        self.phase = 0
        self.state, self.phase_left_s = PHASES[0]
        self.wash_c -= FILL_COOLS_WASH_C
        self.lowest_rinse_c = float("inf")
        return True

    def open_hood(self) -> None:
        """Lift the hood (a running cycle pauses)."""
        self.hood_open = True

    def close_hood(self) -> None:
        """Lower the hood."""
        self.hood_open = False

    def fail_booster(self) -> None:
        """The rinse booster heater fails: rinses get colder cycle by cycle."""
        self.booster_failed = True

    def repair_booster(self) -> None:
        """The booster heats again."""
        self.booster_failed = False

    def refill(self) -> None:
        """New detergent and rinse aid containers."""
        self.detergent = self.rinse_aid = 100.0

    # ---- physics ---------------------------------------------------------------------------

    def _on_write(self, point_id: str, value: Value) -> None:
        if point_id == "start_cycle" and value:
            self.start_cycle()

    def _settings(self) -> None:
        self.wash_set_c = self.bank.number("wash_set_temp")
        self.rinse_set_c = self.bank.number("rinse_set_temp")

    @property
    def remaining_s(self) -> float:
        """Seconds left in the running cycle (0 when idle)."""
        if self.phase < 0:
            return 0.0
        return self.phase_left_s + sum(d for _, d in PHASES[self.phase + 1 :])

    def _advance(self, dt_s: float) -> None:
        self.wash_heating = _thermostat(self.wash_heating, self.wash_c, self.wash_set_c)
        self.rinse_heating = not self.booster_failed and _thermostat(
            self.rinse_heating, self.rinse_c, self.rinse_set_c
        )
        self.wash_c += (
            (WASH_HEAT_C_PER_S if self.wash_heating else 0.0)
            - (self.wash_c - self.ambient_c) / TANK_LOSS_TC_S
        ) * dt_s
        self.rinse_c += (
            (RINSE_HEAT_C_PER_S if self.rinse_heating else 0.0)
            - (self.rinse_c - self.ambient_c) / TANK_LOSS_TC_S
            - (RINSE_DRAW_C_PER_S if self.state is CycleState.RINSING else 0.0)
        ) * dt_s
        if self.state is CycleState.RINSING:
            self.lowest_rinse_c = min(self.lowest_rinse_c, self.rinse_c)
        if self.phase >= 0 and not self.hood_open:
            self.phase_left_s -= dt_s
            if self.phase_left_s <= 0:
                self._next_phase()

    def _next_phase(self) -> None:
        self.phase += 1
        if self.phase < len(PHASES):
            self.state, self.phase_left_s = PHASES[self.phase]
            return
        self.phase, self.phase_left_s, self.state = -1, 0.0, CycleState.IDLE
        self.cycles += 1
        self.last_rinse_c = self.lowest_rinse_c
        self.detergent = max(0.0, self.detergent - DETERGENT_PER_CYCLE)
        self.rinse_aid = max(0.0, self.rinse_aid - RINSE_AID_PER_CYCLE)

    def _publish(self) -> None:
        b = self.bank
        b.set("wash_temp", self.wash_c)
        b.set("rinse_temp", self.rinse_c)
        b.set("cycle_state", int(self.state))
        b.set("cycle_remaining", round(self.remaining_s))
        b.set("cycle_count", self.cycles)
        b.set("detergent_level", round(self.detergent))
        b.set("rinse_aid_level", round(self.rinse_aid))
        b.set("rinse_too_cold", 0 < self.last_rinse_c < SANITISING_RINSE_C)
        b.set("detergent_low", self.detergent < LOW_LEVEL)
        b.set("rinse_aid_low", self.rinse_aid < LOW_LEVEL)
        b.set("last_rinse_temp", self.last_rinse_c)
        b.set("hood_open", self.hood_open)
        b.set("start_cycle", value=False)  # self-clearing command coil


def _thermostat(on: bool, value: float, set_c: float) -> bool:
    """On below the set point - 1 K, off at the set point, unchanged in between."""
    if value < set_c - 1.0:
        return True
    if value >= set_c:
        return False
    return on
