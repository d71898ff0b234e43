"""Timing knobs of the device service and its connections (no I/O, no imports of pymodbus).

Kept apart from :mod:`gateway.devices.service` so that a connection factory
(:func:`gateway.devices.connection.modbus_connection`) can take them without importing the
service that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tuning"]


@dataclass(frozen=True, slots=True)
class Tuning:
    """Timing knobs of the device service; the defaults suit a kitchen, tests shorten them.

    Attributes:
        connect_timeout_s: one connect attempt.
        reconnect_s: first and largest delay between connect attempts (doubling, jittered).
        backoff_max_s: cap of the delay between polls of a device that does not answer.
        silent_limit: requests in a row without an answer before a connection is reopened
            (only once every unit heard on it has gone silent: one dead unit behind a Modbus
            TCP gateway does not cut off the others).
        offline_after: failed polls in a row that make a device offline (degraded before).
        sensor_silence_s: an MQTT sensor node silent this long reads as offline.
        subscriber_buffer: readings buffered per subscriber before the oldest are dropped.
        poll_tick_s: the grid poll phases are put on, so that devices sharing a slot wake the
            loop once (see ``gateway.devices.poller``); 0 spreads them at random.
        timeout_cap_s: the most a slow device's request timeout is stretched to, from its
            measured answers (``gateway.devices.pace``); the profile's ``timeout_s`` is the least.
    """

    connect_timeout_s: float = 2.0
    reconnect_s: tuple[float, float] = (0.5, 10.0)
    backoff_max_s: float = 15.0
    silent_limit: int = 3
    offline_after: int = 3
    sensor_silence_s: float = 300.0
    subscriber_buffer: int = 1000
    poll_tick_s: float = 0.05
    timeout_cap_s: float = 2.0
