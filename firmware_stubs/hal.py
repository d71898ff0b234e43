"""The hardware layer of the sensor nodes: what the node code needs from a board.

:class:`Hal` is the interface. :class:`BoardHal` implements it on an ESP32-class MicroPython
board (HX711 load-cell amplifier, DS18B20 probe, door reed switch, battery divider on an ADC).
Tests use :class:`firmware_stubs.sim_hal.SimHal`.

A sensor that is absent returns None (optional fields are then left out of the reading); a sensor
that fails raises ``OSError`` (the node skips that reading and counts it).

MicroPython code: no annotations, no typing, no dataclasses.
"""

# ruff: noqa: ANN001, ANN201, ANN204
# MicroPython: no annotations (CPython would evaluate them, some ports cannot parse them).

__all__ = ["BoardHal", "Hal", "iso_from_tuple"]


def iso_from_tuple(t, millis=None):
    """ISO 8601 UTC text from a ``(year, month, day, hour, minute, second, ...)`` tuple."""
    text = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
    if millis is not None:
        text += f".{millis:03d}"
    return text + "Z"


class Hal:
    """Board services used by the node code. Subclass per board; methods may be called often."""

    def ticks_ms(self):
        """Monotonic milliseconds (wrapping is the board's business: compare with ticks_diff)."""
        raise NotImplementedError

    def ticks_diff(self, later, earlier):
        """``later - earlier`` in milliseconds, correct across a wrap of the tick counter."""
        return later - earlier

    def ticks_add(self, ticks, delta):
        """``ticks`` moved on by ``delta`` milliseconds (wrapping like the counter)."""
        return ticks + delta

    def sleep_ms(self, ms):
        """Sleep (or light-sleep) for ``ms`` milliseconds."""
        raise NotImplementedError

    def utc_iso(self):
        """Current UTC time as ISO 8601 text ending in ``Z`` (the RTC, set by NTP at boot)."""
        raise NotImplementedError

    def rand_ms(self, upto):
        """A random whole number of milliseconds in ``0..upto`` (reconnect jitter)."""
        raise NotImplementedError

    def load_cell_g(self):
        """Load on the scale in grams (None: no load cell)."""

    def temperature_c(self):
        """Probe temperature in °C (None: no probe)."""

    def door_open(self):
        """Door switch: True open, False closed (None: no switch)."""

    def battery_v(self):
        """Battery voltage (None: mains powered)."""

    def rssi_dbm(self):
        """Wi-Fi signal strength (None: unknown)."""


class BoardHal(Hal):
    """An ESP32-class MicroPython board. Pins are GPIO numbers; None leaves a sensor out.

    Args:
        hx711_dout: HX711 data pin.
        hx711_sck: HX711 clock pin.
        counts_per_g: load-cell calibration (raw counts per gram).
        zero_counts: raw counts with nothing on the platform.
        ds18b20: DS18B20 one-wire data pin.
        door: reed switch pin (closed door pulls it low).
        battery_adc: ADC pin behind a voltage divider.
        battery_divider: the divider's ratio.
    """

    def __init__(
        self, *, hx711_dout=None, hx711_sck=None, counts_per_g=1.0, zero_counts=0,
        ds18b20=None, door=None, battery_adc=None, battery_divider=2.0,
    ):  # fmt: skip
        """Set up the pins; imports MicroPython's modules here so CPython can import the file."""
        import machine  # noqa: PLC0415 -- MicroPython only

        self._machine = machine
        self._counts_per_g = counts_per_g
        self._zero = zero_counts
        self._dout = self._sck = None
        if hx711_dout is not None and hx711_sck is not None:
            self._dout = machine.Pin(hx711_dout, machine.Pin.IN)
            self._sck = machine.Pin(hx711_sck, machine.Pin.OUT, value=0)
        self._ds = self._roms = None
        if ds18b20 is not None:
            import ds18x20  # noqa: PLC0415 -- MicroPython only
            import onewire  # noqa: PLC0415

            self._ds = ds18x20.DS18X20(onewire.OneWire(machine.Pin(ds18b20)))
            self._roms = self._ds.scan()
        self._door = machine.Pin(door, machine.Pin.IN, machine.Pin.PULL_UP) if door else None
        self._adc = machine.ADC(machine.Pin(battery_adc)) if battery_adc is not None else None
        self._divider = battery_divider

    def ticks_ms(self):
        """``time.ticks_ms()``."""
        import time  # noqa: PLC0415

        return time.ticks_ms()

    def ticks_diff(self, later, earlier):
        """``time.ticks_diff()``."""
        import time  # noqa: PLC0415

        return time.ticks_diff(later, earlier)

    def ticks_add(self, ticks, delta):
        """``time.ticks_add()``."""
        import time  # noqa: PLC0415

        return time.ticks_add(ticks, delta)

    def sleep_ms(self, ms):
        """``time.sleep_ms()``."""
        import time  # noqa: PLC0415

        time.sleep_ms(ms)

    def utc_iso(self):
        """The RTC as ISO 8601 UTC (set it with ``ntptime.settime()`` at boot)."""
        import time  # noqa: PLC0415

        return iso_from_tuple(time.gmtime())

    def rand_ms(self, upto):
        """Jitter from the hardware RNG."""
        import random  # noqa: PLC0415

        return random.getrandbits(16) % (upto + 1)

    def load_cell_g(self):
        """One HX711 conversion (channel A, gain 128) in grams."""
        if self._dout is None or self._sck is None:
            return None
        deadline = self.ticks_add(self.ticks_ms(), 200)
        while self._dout.value():  # high until a conversion is ready (10 or 80 per second)
            if self.ticks_diff(deadline, self.ticks_ms()) < 0:
                raise OSError("HX711 not ready")
        raw = 0
        for _ in range(24):
            self._sck.value(1)
            self._sck.value(0)
            raw = (raw << 1) | self._dout.value()
        self._sck.value(1)  # a 25th pulse selects channel A, gain 128 for the next conversion
        self._sck.value(0)
        if raw & 0x800000:
            raw -= 0x1000000
        return (raw - self._zero) / self._counts_per_g

    def temperature_c(self):
        """The first DS18B20 on the bus (a conversion takes up to 750 ms)."""
        if self._ds is None:
            return None
        if not self._roms:
            raise OSError("no DS18B20 found")
        self._ds.convert_temp()
        self.sleep_ms(750)
        return self._ds.read_temp(self._roms[0])

    def door_open(self):
        """The reed switch (open door: contact open, pin pulled high)."""
        return None if self._door is None else bool(self._door.value())

    def battery_v(self):
        """Battery voltage through the divider."""
        if self._adc is None:
            return None
        return self._adc.read_uv() * self._divider / 1_000_000

    def rssi_dbm(self):
        """Signal strength of the Wi-Fi station interface."""
        import network  # noqa: PLC0415 -- MicroPython only

        try:
            return network.WLAN(network.STA_IF).status("rssi")
        except (OSError, ValueError):
            return None
