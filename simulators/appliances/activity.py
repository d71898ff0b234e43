"""Random kitchen life for the demo: doors open, baskets drop, pans empty. Pure apart from run().

Rates are per simulated hour; :meth:`KitchenActivity.step` takes simulated seconds and a seeded
RNG so it is reproducible, and :meth:`KitchenActivity.run` calls it once a real second.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from simulators.appliances.cold_room import ColdRoomModel
from simulators.appliances.dishwasher import DishwasherModel
from simulators.appliances.fryer import VATS, FryerMode, FryerModel
from simulators.appliances.oven import PROGRAMS, OvenMode, OvenModel
from simulators.appliances.scale import CHANNELS, ScaleModel
from simulators.appliances.tank import TankModel

if TYPE_CHECKING:
    from collections.abc import Iterable

    from simulators.appliances.physics import ApplianceModel

__all__ = ["KitchenActivity"]

DOOR_OPENINGS_PER_H = 8.0
DOOR_OPEN_S = 40.0
FRY_DROPS_PER_H = 20.0  # per vat
OVEN_PROGRAMS_PER_H = 2.0
WASH_CYCLES_PER_H = 25.0
DISHES_PER_H = 40.0
PORTION_G = (150.0, 120.0, 0.0, 0.0)  # per scale channel
REFILL_BELOW_G = 1_500.0
REFILL_G = 5_000.0
TANK_REFILL_BELOW_PCT = 12.0


class KitchenActivity:
    """Drives the models of a set of appliances with random kitchen events.

    Args:
        models: the appliances' physics models.
        seed: RNG seed (None: random).
    """

    def __init__(self, models: Iterable[ApplianceModel], *, seed: int | None = None) -> None:
        """Keep the models; nothing happens until :meth:`step` or :meth:`run`."""
        self.models = list(models)
        self.rng = random.Random(seed)
        self._door_left: dict[int, float] = {}

    def _chance(self, per_hour: float, dt_s: float) -> bool:
        return self.rng.random() < per_hour * dt_s / 3600.0

    def step(self, dt_s: float) -> None:
        """Let ``dt_s`` simulated seconds of kitchen life happen."""
        for model in self.models:
            if isinstance(model, ColdRoomModel):
                self._cold_room(model, dt_s)
            elif isinstance(model, FryerModel):
                self._fryer(model, dt_s)
            elif isinstance(model, OvenModel):
                self._oven(model, dt_s)
            elif isinstance(model, DishwasherModel):
                if self._chance(WASH_CYCLES_PER_H, dt_s):
                    model.start_cycle()
            elif isinstance(model, ScaleModel):
                self._scale(model, dt_s)
            elif isinstance(model, TankModel) and model.level_pct < TANK_REFILL_BELOW_PCT:
                model.refill()

    def _cold_room(self, model: ColdRoomModel, dt_s: float) -> None:
        key = id(model)
        if key in self._door_left:
            self._door_left[key] -= dt_s
            if self._door_left[key] <= 0:
                del self._door_left[key]
                model.close_door()
        elif self._chance(DOOR_OPENINGS_PER_H, dt_s):
            self._door_left[key] = DOOR_OPEN_S
            model.open_door()

    def _fryer(self, model: FryerModel, dt_s: float) -> None:
        for vat in range(1, VATS + 1):
            v = model.vats[vat - 1]
            if v.mode is FryerMode.OFF:
                model.power_on(vat)
            elif (
                v.mode in (FryerMode.FRYING, FryerMode.STANDBY)
                and v.basket_lifted
                and self._chance(FRY_DROPS_PER_H, dt_s)
            ):
                model.start_timer(vat)

    def _oven(self, model: OvenModel, dt_s: float) -> None:
        if model.mode is OvenMode.OFF and self._chance(OVEN_PROGRAMS_PER_H, dt_s):
            number = self.rng.choice(sorted(PROGRAMS))
            if PROGRAMS[number].core_c is not None:
                model.insert_probe()
            model.start_program(number)

    def _scale(self, model: ScaleModel, dt_s: float) -> None:
        if self._chance(DISHES_PER_H, dt_s):
            model.cook({n: g for n, g in enumerate(PORTION_G, start=1) if g})
        for n in range(1, CHANNELS + 1):
            tare = model.tare_g[n - 1]
            if PORTION_G[n - 1] and model.load_g[n - 1] - tare < REFILL_BELOW_G:
                model.place(n, REFILL_G)

    async def run(self, speed: float, every_s: float = 1.0) -> None:
        """Call :meth:`step` every ``every_s`` real seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            self.step(every_s * speed)
