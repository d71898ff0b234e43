"""A fryer whose vats heat with more than one element, any of which can fail. Pure.

:class:`~simulators.appliances.fryer.FryerModel` heats each vat with one lump of power. A real
vat has two or three elements; when one burns out the vat still reaches its set point (the
thermostat just stays on longer) but recovers more slowly after every basket of frozen food,
which is how the failure shows before anyone notices soggy fries. This model adds that, and
leaves the fryer's own physics as they are: it takes back the share of the heat the failed
elements would have given, after each step of the base model.

Example::

    fryer = ElementFryerModel(RegisterBank(profile))
    fryer.fail_element(1)      # vat 1: one of its two elements is dead
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.appliances.fryer import HEAT_C_PER_S, VATS, FryerMode, FryerModel
from simulators.appliances.physics import KITCHEN_C

if TYPE_CHECKING:
    from simulators.appliances.registers import RegisterBank

__all__ = ["ElementFryerModel"]

#: Heating elements per vat.
ELEMENTS = 2
#: The share of full power the base model gives in melt mode (it pulses the heater).
MELT_POWER = 0.25


class ElementFryerModel(FryerModel):
    """A two-vat fryer with :data:`ELEMENTS` heating elements per vat.

    Args:
        bank: the device's registers.
        ambient_c: kitchen temperature.
        hot: start in the middle of service rather than cold and off.
    """

    def __init__(
        self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C, hot: bool = True
    ) -> None:
        """Every element works."""
        self.working = [ELEMENTS] * VATS
        super().__init__(bank, ambient_c=ambient_c, hot=hot)

    def fail_element(self, vat: int) -> None:
        """One more element of ``vat`` burns out (none left: the vat no longer heats)."""
        self._vat(vat)
        self.working[vat - 1] = max(0, self.working[vat - 1] - 1)

    def repair_elements(self, vat: int) -> None:
        """New elements in ``vat``."""
        self._vat(vat)
        self.working[vat - 1] = ELEMENTS

    def _advance(self, dt_s: float) -> None:
        melting = [v.mode is FryerMode.MELT for v in self.vats]
        super()._advance(dt_s)
        for i, v in enumerate(self.vats):
            lost = 1.0 - self.working[i] / ELEMENTS
            # The base model sets the heater from the state at the start of the step and heats
            # with it (the mode may change after); its heat is linear in power, so taking the
            # lost share back afterwards is exact.
            if lost > 0 and v.heating:
                power = MELT_POWER if melting[i] else 1.0
                v.oil_c -= HEAT_C_PER_S * power * lost * dt_s
