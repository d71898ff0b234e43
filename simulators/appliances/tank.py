"""Bulk oil tank: drains as the fryers are topped up, refilled by a delivery. Pure.

The level falls at a steady draw rate (plus any explicit :meth:`TankModel.draw`); volume is the
level times the capacity in the read-only ``capacity_l`` register; the oil temperature follows
the store room slowly; ``low_level`` is set below the threshold the gateway may write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.appliances.physics import ApplianceModel, lag

if TYPE_CHECKING:
    from simulators.appliances.registers import RegisterBank

__all__ = ["TankModel"]

STORE_ROOM_C = 18.0
TEMP_TC_S = 10_800.0
DEFAULT_CAPACITY_L = 1_000.0
DEFAULT_DRAW_L_PER_H = 12.0


class TankModel(ApplianceModel):
    """A level-measured tank (profile ``tank-level``).

    Args:
        bank: the device's registers.
        ambient_c: temperature of the room the tank stands in.
        draw_l_per_h: steady consumption.
        level_pct: level at start.
    """

    points = ("level_pct", "volume_l", "temperature", "low_level_alarm_pct", "capacity_l",
              "low_level")  # fmt: skip

    def __init__(
        self,
        bank: RegisterBank,
        *,
        ambient_c: float = STORE_ROOM_C,
        draw_l_per_h: float = DEFAULT_DRAW_L_PER_H,
        level_pct: float = 80.0,
    ) -> None:
        """Start ``level_pct`` full at room temperature."""
        super().__init__(bank, ambient_c=ambient_c)
        if bank.number("capacity_l") == 0:
            bank.set("capacity_l", DEFAULT_CAPACITY_L)
        if bank.number("low_level_alarm_pct") == 0:
            bank.set("low_level_alarm_pct", 15)
        self.draw_l_per_h = draw_l_per_h
        self._settings()
        self.volume = self.capacity_l * level_pct / 100.0
        self.temp_c = ambient_c
        self._publish()

    def draw(self, litres: float) -> None:
        """Take ``litres`` out at once (a fryer top-up)."""
        self.volume = max(0.0, self.volume - litres)

    def refill(self, litres: float | None = None) -> None:
        """A delivery: ``litres`` more, or full when None (never over capacity)."""
        added = self.capacity_l if litres is None else litres
        self.volume = min(self.capacity_l, self.volume + added)

    @property
    def level_pct(self) -> float:
        """How full the tank is, 0..100."""
        return 100.0 * self.volume / self.capacity_l if self.capacity_l > 0 else 0.0

    def _settings(self) -> None:
        self.capacity_l = self.bank.number("capacity_l")
        self.low_alarm_pct = self.bank.number("low_level_alarm_pct")

    def _advance(self, dt_s: float) -> None:
        self.draw(self.draw_l_per_h * dt_s / 3600.0)
        self.temp_c = lag(self.temp_c, self.ambient_c, dt_s, TEMP_TC_S)

    def _publish(self) -> None:
        b = self.bank
        b.set("level_pct", self.level_pct)
        b.set("volume_l", self.volume)
        b.set("temperature", self.temp_c)
        b.set("low_level", self.level_pct < self.low_alarm_pct)
