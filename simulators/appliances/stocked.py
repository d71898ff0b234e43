"""A walk-in full of stock: the air trades heat with the food, which holds far more of it. Pure.

:class:`~simulators.appliances.cold_room.ColdRoomModel` simulates the air of an empty room.
A working walk-in is loaded: the food's heat capacity is many times the air's, so (DOMAIN.md)
when the compressor fails with the door shut the air rises quickly to a little above the
product and then only about 1-2 °C an hour, a door opening lifts the air 1-3 °C and it is back
in minutes, and a delivery of warmer goods is pulled down over an hour or so. This model adds
that one thing, a stock node coupled to the air, on top of the room's own physics (which it
does not change), plus what a real air probe adds: a little noise.

Example::

    room = StockedColdRoomModel(RegisterBank(profile), stock_ratio=8.0, seed=1)
    room.deliver(0.3, 7.0)     # 30 % of the stock replaced by goods delivered at 7 °C
    room.step(3600)
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from simulators.appliances.cold_room import ColdRoomModel, ColdRoomTuning
from simulators.appliances.physics import KITCHEN_C

if TYPE_CHECKING:
    from simulators.appliances.registers import RegisterBank

__all__ = ["StockedColdRoomModel"]


class StockedColdRoomModel(ColdRoomModel):
    """A walk-in fridge or freezer with stock in it.

    Args:
        bank: the device's registers.
        ambient_c: temperature around the room.
        tuning: the room's thermal constants.
        stock_ratio: heat capacity of the stock over the air's (and the shelving's).
        stock_tc_s: time constant of the air's exchange with the stock, as the air sees it.
        probe_noise_k: standard deviation of the air probe's noise, kelvin.
        seed: seed of the noise.
    """

    def __init__(
        self,
        bank: RegisterBank,
        *,
        ambient_c: float = KITCHEN_C,
        tuning: ColdRoomTuning | None = None,
        stock_ratio: float = 8.0,
        stock_tc_s: float = 300.0,
        probe_noise_k: float = 0.0,
        seed: int | None = None,
    ) -> None:
        """Start with the stock at the air's temperature."""
        self.stock_ratio = stock_ratio
        self.stock_tc_s = stock_tc_s
        self.probe_noise_k = probe_noise_k
        self._rng = random.Random(seed)
        self.stock_c = 0.0
        super().__init__(bank, ambient_c=ambient_c, tuning=tuning)
        self.stock_c = self.cabinet_c
        self._publish()

    def deliver(self, share: float, temp_c: float) -> None:
        """Replace ``share`` (0..1) of the stock with goods at ``temp_c`` (a delivery)."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within 0..1, got {share}")
        self.stock_c = (1.0 - share) * self.stock_c + share * temp_c

    def _advance(self, dt_s: float) -> None:
        super()._advance(dt_s)
        # Heat the air gains from (or gives to) the stock; the stock feels it stock_ratio
        # times less. dt_s is at most max_step_s (1 s), far below stock_tc_s: explicit is fine.
        q = (self.stock_c - self.cabinet_c) * dt_s / self.stock_tc_s
        self.cabinet_c += q
        self.stock_c -= q / self.stock_ratio

    def _publish(self) -> None:
        super()._publish()
        if self.probe_noise_k > 0:
            noisy = self.cabinet_c + self._rng.gauss(0.0, self.probe_noise_k)
            self.bank.set("cabinet_temp", noisy)
