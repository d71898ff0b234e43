"""What every appliance model shares: stepping simulated time, lags, short error logs. Pure.

A model owns the physical state of one appliance (oil temperature, door, compressor) and keeps
the device's registers up to date in its :class:`~simulators.appliances.registers.RegisterBank`.
Time only enters through :meth:`ApplianceModel.step`, in simulated seconds, so unit tests drive
hours of kitchen life in microseconds and the server scales real time by a ``speed`` factor.

Settings the gateway may write (set points, intervals) are read from the bank at the start of
each step; self-clearing command coils (start a cook timer, start a wash) arrive through the
bank's write listener and are cleared by the model, as devices do.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gateway.devices.codec import Value
    from simulators.appliances.registers import RegisterBank

__all__ = ["ApplianceModel", "ErrorLog", "lag"]

#: Kitchen air temperature the appliances lose heat to (or gain it from), °C.
KITCHEN_C = 25.0


def lag(value: float, target: float, dt_s: float, tc_s: float) -> float:
    """First-order approach of ``value`` to ``target`` with time constant ``tc_s``.

    Exact for a constant target, so it stays stable for any step length.
    """
    if tc_s <= 0:
        return target
    return target + (value - target) * math.exp(-dt_s / tc_s)


class ErrorLog:
    """The last ``size`` error codes, newest first, as equipment controllers keep them."""

    def __init__(self, size: int) -> None:
        """Start with no errors (all codes 0)."""
        self.codes = [0] * size

    def push(self, code: int) -> None:
        """Record a new error; the oldest falls off."""
        self.codes = [code, *self.codes[:-1]]

    def publish(self, bank: RegisterBank, prefix: str) -> None:
        """Write the codes to points ``{prefix}1`` (newest) .. ``{prefix}{size}``."""
        for i, code in enumerate(self.codes, start=1):
            bank.set(f"{prefix}{i}", code)


class ApplianceModel(ABC):
    """Base of the appliance models: sub-stepped simulated time over a register bank.

    Subclasses list the point ids they need in ``points`` (checked at construction, so a
    profile that lacks one fails at start-up with a message naming it), and implement
    ``_settings`` (read what the gateway may have written), ``_advance`` (move the physics on by
    at most ``max_step_s``) and ``_publish`` (write the state to the bank).

    Attributes:
        bank: the device's registers.
        ambient_c: air temperature around the appliance.
        elapsed_s: simulated seconds since the model was made.
    """

    #: Point ids the model reads or writes.
    points: ClassVar[tuple[str, ...]] = ()
    #: Longest sub-step of the integration, simulated seconds.
    max_step_s: ClassVar[float] = 1.0

    def __init__(self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C) -> None:
        """Check the profile has the model's points and listen for gateway writes.

        Raises:
            ValueError: the profile lacks points the model needs.
        """
        bank.require(self.points, type(self).__name__)
        self.bank = bank
        self.ambient_c = ambient_c
        self.elapsed_s = 0.0
        bank.on_write(self._on_write)

    def step(self, dt_s: float) -> None:
        """Advance the physics by ``dt_s`` simulated seconds and update the registers.

        Raises:
            ValueError: ``dt_s`` is negative.
        """
        if dt_s < 0:
            raise ValueError(f"time only moves forward (dt_s = {dt_s})")
        self._settings()
        left = dt_s
        while left > 0:
            h = min(left, self.max_step_s)
            self._advance(h)
            self.elapsed_s += h
            left -= h
        self._publish()

    def _on_write(self, point_id: str, value: Value) -> None:  # noqa: B027 - optional hook
        """React to an accepted gateway write (default: settings are read each step)."""

    def _settings(self) -> None:  # noqa: B027 - optional hook
        """Read the settings the gateway may have written."""

    @abstractmethod
    def _advance(self, dt_s: float) -> None:
        """Move the physics on by ``dt_s`` (at most ``max_step_s``)."""

    @abstractmethod
    def _publish(self) -> None:
        """Write the current state to the bank."""
