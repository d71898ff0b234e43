"""Scale node firmware (profile ``scale-node``): one load cell under a pan or tub.

Publishes ``weight_g`` (gross, grams, one decimal), ``stable`` (the last few readings agree within
a tolerance: someone lifting the tub is not a stock change) and, when the board has them,
``battery_v`` and ``rssi_dbm``. See :mod:`firmware_stubs.node` for connection, presence and
buffering.

MicroPython code: no annotations, no typing, no dataclasses.
"""

# ruff: noqa: ANN001, ANN003, ANN201, ANN204
# MicroPython: no annotations (CPython would evaluate them, some ports cannot parse them).

from firmware_stubs.node import SensorNode

__all__ = ["ScaleNode", "StabilityWindow"]


class StabilityWindow:
    """The last ``size`` weights: stable when the window is full and spans <= ``tolerance_g``."""

    def __init__(self, size=4, tolerance_g=2.0):
        """An empty window."""
        self.size = size
        self.tolerance_g = tolerance_g
        self._weights = []

    def add(self, grams):
        """Add a weight and say whether the reading is now stable."""
        self._weights.append(grams)
        if len(self._weights) > self.size:
            self._weights.pop(0)
        full = len(self._weights) == self.size
        return full and max(self._weights) - min(self._weights) <= self.tolerance_g


class ScaleNode(SensorNode):
    """A scale node; ``stability`` sets the window (readings) and tolerance (grams)."""

    def __init__(self, hal, device_id, site, host, *, stability=(4, 2.0), **options):
        """See :class:`firmware_stubs.node.SensorNode` for the options."""
        super().__init__(hal, device_id, site, host, **options)
        self.window = StabilityWindow(stability[0], stability[1])

    def read_values(self):
        """Weight, stability and the optional battery and signal fields."""
        grams = self.hal.load_cell_g()
        if grams is None:
            raise OSError("this board has no load cell")
        values = {"weight_g": round(grams, 1), "stable": self.window.add(grams)}
        battery = self.hal.battery_v()
        if battery is not None:
            values["battery_v"] = round(battery, 2)
        rssi = self.hal.rssi_dbm()
        if rssi is not None:
            values["rssi_dbm"] = int(rssi)
        return values
