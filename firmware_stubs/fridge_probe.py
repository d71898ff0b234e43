"""Fridge probe firmware (profile ``fridge-probe-node``): air temperature and door of a reach-in.

Publishes ``temp_c`` (two decimals) and, when the board has them, ``door_open``, ``battery_v``
and ``rssi_dbm``. A door that changes state is reported at once, not at the next period, so the
gateway can tell a door opening from a warming fridge. See :mod:`firmware_stubs.node` for
connection, presence and buffering.

MicroPython code: no annotations, no typing, no dataclasses.
"""

# ruff: noqa: ANN001, ANN003, ANN201, ANN204
# MicroPython: no annotations (CPython would evaluate them, some ports cannot parse them).

from firmware_stubs.node import SensorNode

__all__ = ["FridgeProbeNode"]

#: How often the door switch is looked at between readings, milliseconds.
DOOR_CHECK_MS = 500


class FridgeProbeNode(SensorNode):
    """A fridge probe node."""

    def __init__(self, hal, device_id, site, host, **options):
        """See :class:`firmware_stubs.node.SensorNode` for the options."""
        super().__init__(hal, device_id, site, host, **options)
        self.last_door = None

    def read_values(self):
        """Temperature and the optional door, battery and signal fields."""
        temp = self.hal.temperature_c()
        if temp is None:
            raise OSError("this board has no temperature probe")
        values = {"temp_c": round(temp, 2)}
        door = self.hal.door_open()
        if door is not None:
            values["door_open"] = door
            self.last_door = door
        battery = self.hal.battery_v()
        if battery is not None:
            values["battery_v"] = round(battery, 2)
        rssi = self.hal.rssi_dbm()
        if rssi is not None:
            values["rssi_dbm"] = int(rssi)
        return values

    def door_changed(self):
        """Whether the door switch differs from the last reading's."""
        door = self.hal.door_open()
        return door is not None and self.last_door is not None and door != self.last_door

    def run(self, readings=None):
        """Like :meth:`SensorNode.run`, but a door change triggers a reading at once."""
        done = 0
        while readings is None or done < readings:
            self.step()
            done += 1
            waited = 0
            while waited < self.period_ms and not self.door_changed():
                self.hal.sleep_ms(DOOR_CHECK_MS)
                waited += DOOR_CHECK_MS
