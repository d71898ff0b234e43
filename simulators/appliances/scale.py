"""Four-channel shelf scale: pans lose weight as dishes are cooked. Pure.

Each channel carries a pan (container) and its contents. When the load changes the reading
settles towards the new weight over about a second and the channel's ``stable`` bit is clear
until it has settled (someone lifting a tub is not a stock change, DOMAIN.md). The scale reports
gross weight and its own net weight (gross - the tare the gateway wrote), in whole grams, and an
overload bit above the channel's capacity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulators.appliances.physics import KITCHEN_C, ApplianceModel, lag

if TYPE_CHECKING:
    from collections.abc import Mapping

    from simulators.appliances.registers import RegisterBank

__all__ = ["ScaleModel"]

CHANNELS = 4
CAPACITY_G = 30_000.0
SETTLE_TC_S = 0.3  # how fast the reading follows the load
SETTLE_MIN_S = 1.0  # a change is never stable sooner than this
STABLE_WITHIN_G = 1.0
PAN_G = 1_200.0  # a full-size stainless gastronorm pan, roughly

#: (pan, contents) in grams on each channel when the simulator starts.
START_LOADS: tuple[tuple[float, float], ...] = (
    (PAN_G, 5_000.0),  # e.g. chips
    (PAN_G, 3_500.0),  # burger patties
    (PAN_G, 8_000.0),  # oil top-up jug
    (0.0, 0.0),  # empty channel
)


class ScaleModel(ApplianceModel):
    """A four-channel scale (profile ``scale-4ch``); channels are numbered 1..4."""

    points = tuple(
        f"ch{n}_{name}"
        for n in range(1, CHANNELS + 1)
        for name in ("gross", "stable", "overload", "net", "tare")
    )

    def __init__(self, bank: RegisterBank, *, ambient_c: float = KITCHEN_C) -> None:
        """Start with the pans of :data:`START_LOADS` settled and their tares written."""
        super().__init__(bank, ambient_c=ambient_c)
        self.load_g = [pan + contents for pan, contents in START_LOADS]
        self.reading_g = list(self.load_g)
        self.settle_s = [0.0] * CHANNELS
        for n, (pan, _) in enumerate(START_LOADS, start=1):
            if bank.number(f"ch{n}_tare") == 0:
                bank.set(f"ch{n}_tare", round(pan))
        self._settings()
        self._publish()

    # ---- things that happen to it ----------------------------------------------------------

    def place(self, channel: int, grams: float) -> None:
        """Put ``grams`` more on a channel (a delivery, a refill)."""
        self._change(channel, grams)

    def take(self, channel: int, grams: float) -> None:
        """Take ``grams`` off a channel (never below an empty platform)."""
        self._change(channel, -grams)

    def set_load(self, channel: int, grams: float) -> None:
        """Make the load on a channel exactly ``grams`` (pan included)."""
        i = self._index(channel)
        self._change(channel, grams - self.load_g[i])

    def cook(self, usage: Mapping[int, float], portions: int = 1) -> None:
        """Dishes were cooked: take each channel's grams per portion, ``portions`` times."""
        for channel, grams in usage.items():
            self.take(channel, grams * portions)

    # ---- physics ---------------------------------------------------------------------------

    def _index(self, channel: int) -> int:
        if not 1 <= channel <= CHANNELS:
            raise ValueError(f"channel must be 1..{CHANNELS}, got {channel}")
        return channel - 1

    def _change(self, channel: int, grams: float) -> None:
        i = self._index(channel)
        self.load_g[i] = max(0.0, self.load_g[i] + grams)
        self.settle_s[i] = SETTLE_MIN_S

    def _settings(self) -> None:
        self.tare_g = [self.bank.number(f"ch{n}_tare") for n in range(1, CHANNELS + 1)]

    def _advance(self, dt_s: float) -> None:
        for i in range(CHANNELS):
            self.reading_g[i] = lag(self.reading_g[i], self.load_g[i], dt_s, SETTLE_TC_S)
            self.settle_s[i] = max(0.0, self.settle_s[i] - dt_s)

    def stable(self, channel: int) -> bool:
        """Whether a channel's reading has settled."""
        i = self._index(channel)
        return self.settle_s[i] == 0 and abs(self.reading_g[i] - self.load_g[i]) < STABLE_WITHIN_G

    def _publish(self) -> None:
        b = self.bank
        for n in range(1, CHANNELS + 1):
            i = n - 1
            gross = round(self.load_g[i] if self.stable(n) else self.reading_g[i])
            b.set(f"ch{n}_gross", gross)
            b.set(f"ch{n}_net", gross - round(self.tare_g[i]))
            b.set(f"ch{n}_stable", self.stable(n))
            b.set(f"ch{n}_overload", gross > CAPACITY_G)
