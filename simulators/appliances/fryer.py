"""Fryer physics: vats heat towards their set point, food cools them, oil wears out. Pure.

Each vat is a small state machine over the profile's modes::

    off -> melt (oil below 80 °C: the heater pulses) -> preheat -> frying <-> standby
    frying -> filtering -> preheat        any -> error (until cleared)

The heater is a thermostat (on below set point - 1 K, off at the set point). Starting the cook
timer (coil ``vat{n}_timer_start``, or :meth:`FryerModel.start_timer`) lowers the basket, drops the
oil temperature by the cold load and counts the set cook time down; at zero the basket lifts
itself. Oil quality (TPM, % total polar materials) rises with frying time: fresh oil is ~3 %,
oil must be discarded at 24-27 % (DOMAIN.md). Filtering takes a little off; changing the oil
resets it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from simulators.appliances.physics import KITCHEN_C, ApplianceModel, ErrorLog

if TYPE_CHECKING:
    from gateway.devices.codec import Value
    from simulators.appliances.registers import RegisterBank

__all__ = ["FryerMode", "FryerModel", "Vat"]

VATS = 2
HEAT_C_PER_S = 0.45  # full heater power
LOSS_TC_S = 3_600.0  # heat loss to the kitchen
MELT_UNTIL_C = 80.0  # below this the heater pulses at a quarter power (solid shortening)
LOAD_DROP_C = 8.0  # a basket of frozen fries
STANDBY_AFTER_S = 1_200.0  # idle this long at temperature -> standby
STANDBY_C = 120.0
FILTER_S = 300.0
FRESH_TPM = 3.0
TPM_PER_FRY_H = 0.4  # % TPM per hour of food in the oil
TPM_PER_HOT_H = 0.08  # % TPM per hour hot without food
FILTER_TPM_OFF = 0.5
ERROR_HIGH_LIMIT = 21  # oil above the high limit
HIGH_LIMIT_C = 232.0


class FryerMode(IntEnum):
    """Values of ``vat{n}_mode``."""

    OFF = 0
    PREHEAT = 1
    MELT = 2
    FRYING = 3
    STANDBY = 4
    FILTERING = 5
    ERROR = 6


class Vat:
    """The state of one vat."""

    def __init__(self, oil_c: float, mode: FryerMode) -> None:
        """A vat with its oil at ``oil_c`` in ``mode``, fresh oil, basket up."""
        self.mode = mode
        self.oil_c = oil_c
        self.heating = False
        self.remaining_s = 0.0
        self.basket_lifted = True
        self.tpm = FRESH_TPM
        self.oil_hours = 0.0
        self.idle_s = 0.0
        self.filter_left_s = 0.0
        self.errors = ErrorLog(10)


class FryerModel(ApplianceModel):
    """A two-vat fryer (profile ``fryer-2vat``).

    Args:
        bank: the device's registers.
        ambient_c: kitchen temperature.
        hot: start in the middle of service (vats frying at the set point) rather than cold
            and off.
    """

    points = tuple(
        f"vat{n}_{name}"
        for n in range(1, VATS + 1)
        for name in (
            "set_temp", "cook_time", "timer_start", "mode", "oil_temp", "time_remaining",
            "oil_tpm", "basket_lifted", "heating", "oil_hours",
            *(f"error_{i}" for i in range(1, 11)),
        )
    )  # fmt: skip

    def __init__(
        self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C, hot: bool = True
    ) -> None:
        """Set defaults (175 °C, 3 min) where the registers are still zero."""
        super().__init__(bank, ambient_c=ambient_c)
        for n in range(1, VATS + 1):
            if bank.number(f"vat{n}_set_temp") == 0:
                bank.set(f"vat{n}_set_temp", 175.0)
            if bank.number(f"vat{n}_cook_time") == 0:
                bank.set(f"vat{n}_cook_time", 180)
        if bank.has("firmware"):
            bank.set("firmware", "v2.14")
        self._set_c = [0.0] * VATS
        self._cook_s = [0.0] * VATS
        self._settings()
        self.vats = [
            Vat(self._set_c[i], FryerMode.FRYING) if hot else Vat(ambient_c, FryerMode.OFF)
            for i in range(VATS)
        ]
        self._publish()

    # ---- things that happen to it ----------------------------------------------------------

    def power_on(self, vat: int) -> None:
        """Switch a vat on: it melts or preheats, then fries."""
        v = self._vat(vat)
        v.mode = FryerMode.MELT if v.oil_c < MELT_UNTIL_C else FryerMode.PREHEAT

    def power_off(self, vat: int) -> None:
        """Switch a vat off."""
        v = self._vat(vat)
        v.mode, v.remaining_s, v.basket_lifted = FryerMode.OFF, 0.0, True

    def start_timer(self, vat: int) -> None:
        """Lower the basket and start the cook timer (what the timer-start coil does)."""
        v = self._vat(vat)
        if v.mode in (FryerMode.OFF, FryerMode.ERROR, FryerMode.FILTERING):
            return  # the controller ignores the key
        if v.mode is FryerMode.STANDBY:
            v.mode = FryerMode.FRYING
        v.remaining_s = self._cook_s[vat - 1]
        v.basket_lifted = False
        v.oil_c -= LOAD_DROP_C
        v.idle_s = 0.0

    def lift_basket(self, vat: int) -> None:
        """The cook lifts the basket early; the timer stops."""
        v = self._vat(vat)
        v.basket_lifted, v.remaining_s = True, 0.0

    def filter_oil(self, vat: int) -> None:
        """Start the built-in filtration (heater off for a few minutes)."""
        v = self._vat(vat)
        v.mode, v.filter_left_s, v.remaining_s, v.basket_lifted = (
            FryerMode.FILTERING, FILTER_S, 0.0, True,
        )  # fmt: skip

    def change_oil(self, vat: int) -> None:
        """Fresh oil: TPM and oil hours start again."""
        v = self._vat(vat)
        v.tpm, v.oil_hours = FRESH_TPM, 0.0

    def raise_error(self, vat: int, code: int) -> None:
        """The controller detects a fault: logs ``code`` and stops the vat."""
        v = self._vat(vat)
        v.errors.push(code)
        v.mode, v.heating, v.remaining_s, v.basket_lifted = FryerMode.ERROR, False, 0.0, True

    def clear_error(self, vat: int) -> None:
        """Someone acknowledged the fault: the vat is off (the log keeps the code)."""
        v = self._vat(vat)
        if v.mode is FryerMode.ERROR:
            v.mode = FryerMode.OFF

    # ---- physics ---------------------------------------------------------------------------

    def _vat(self, vat: int) -> Vat:
        if not 1 <= vat <= VATS:
            raise ValueError(f"vat must be 1..{VATS}, got {vat}")
        return self.vats[vat - 1]

    def _on_write(self, point_id: str, value: Value) -> None:
        for n in range(1, VATS + 1):
            if point_id == f"vat{n}_timer_start" and value:
                self.start_timer(n)

    def _settings(self) -> None:
        for i in range(VATS):
            self._set_c[i] = self.bank.number(f"vat{i + 1}_set_temp")
            self._cook_s[i] = self.bank.number(f"vat{i + 1}_cook_time")

    def _advance(self, dt_s: float) -> None:
        for i, v in enumerate(self.vats):
            self._advance_vat(v, self._set_c[i], dt_s)

    def _advance_vat(self, v: Vat, set_c: float, dt_s: float) -> None:
        target = STANDBY_C if v.mode is FryerMode.STANDBY else set_c
        if v.mode in (FryerMode.OFF, FryerMode.FILTERING, FryerMode.ERROR):
            v.heating = False
        elif v.mode in (FryerMode.MELT, FryerMode.PREHEAT) or v.oil_c < target - 1.0:
            v.heating = True
        elif v.oil_c >= target:
            v.heating = False
        power = 0.25 if v.mode is FryerMode.MELT else 1.0
        heat = HEAT_C_PER_S * power if v.heating else 0.0
        v.oil_c += (heat - (v.oil_c - self.ambient_c) / LOSS_TC_S) * dt_s
        if v.oil_c > HIGH_LIMIT_C:
            self._vat_error(v, ERROR_HIGH_LIMIT)
        self._advance_mode(v, set_c, dt_s)
        cooking = not v.basket_lifted
        if cooking:
            v.remaining_s = max(0.0, v.remaining_s - dt_s)
            v.oil_hours += dt_s / 3600.0
            v.tpm += TPM_PER_FRY_H * dt_s / 3600.0
            if v.remaining_s == 0:
                v.basket_lifted = True  # auto-lift
        elif v.oil_c > 150.0:
            v.tpm += TPM_PER_HOT_H * dt_s / 3600.0

    @staticmethod
    def _vat_error(v: Vat, code: int) -> None:
        if v.mode is not FryerMode.ERROR:
            v.errors.push(code)
            v.mode, v.heating, v.remaining_s, v.basket_lifted = (
                FryerMode.ERROR, False, 0.0, True,
            )  # fmt: skip

    @staticmethod
    def _advance_mode(v: Vat, set_c: float, dt_s: float) -> None:
        if v.mode is FryerMode.MELT and v.oil_c >= MELT_UNTIL_C:
            v.mode = FryerMode.PREHEAT
        elif v.mode is FryerMode.PREHEAT and v.oil_c >= set_c - 1.0:
            v.mode, v.idle_s = FryerMode.FRYING, 0.0
        elif v.mode is FryerMode.FRYING:
            v.idle_s = 0.0 if not v.basket_lifted else v.idle_s + dt_s
            if v.idle_s >= STANDBY_AFTER_S:
                v.mode = FryerMode.STANDBY
        elif v.mode is FryerMode.FILTERING:
            v.filter_left_s -= dt_s
            if v.filter_left_s <= 0:
                v.tpm = max(FRESH_TPM, v.tpm - FILTER_TPM_OFF)
                v.mode = FryerMode.PREHEAT

    def _publish(self) -> None:
        b = self.bank
        for n, v in enumerate(self.vats, start=1):
            b.set(f"vat{n}_mode", int(v.mode))
            b.set(f"vat{n}_oil_temp", v.oil_c)
            b.set(f"vat{n}_time_remaining", round(v.remaining_s))
            b.set(f"vat{n}_oil_tpm", v.tpm)
            b.set(f"vat{n}_basket_lifted", v.basket_lifted)
            b.set(f"vat{n}_heating", v.heating)
            b.set(f"vat{n}_oil_hours", v.oil_hours)
            b.set(f"vat{n}_timer_start", value=False)  # self-clearing command coil
            v.errors.publish(b, f"vat{n}_error_")
