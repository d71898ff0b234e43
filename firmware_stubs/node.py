"""What every sensor node does, on MicroPython and CPython alike.

* connects with a last will: ``rst/{site}/device/{id}/status`` retained
  ``{"v":1,"device":..,"state":"offline","role":"sensor"}``, then publishes ``online`` there;
* every period reads its sensors into ``rst/{site}/device/{id}/telemetry``
  ``{"v":1,"device":..,"seq":n,"at":..,"values":{...}}`` (QoS 1) with ``seq`` counting up by one
  per reading from 1 at boot (the gateway accepts a lower ``seq`` with a later ``at`` as a
  restart) and ``at`` the time of the reading, not of the send;
* every reading first goes into a bounded ring; the ring is sent oldest first and a reading
  leaves it only once the broker acknowledged it, so while the broker is away readings wait and
  are resent in order when it is back. A full ring drops its oldest reading and counts it;
* reconnects with capped, jittered exponential backoff, without blocking the readings.

MicroPython code: no annotations, no typing, no dataclasses.
"""

# ruff: noqa: ANN001, ANN201, ANN202, ANN204
# MicroPython: no annotations (CPython would evaluate them, some ports cannot parse them).

import json

from firmware_stubs import mqtt_compat

__all__ = ["Ring", "SensorNode"]


class Ring:
    """A bounded FIFO that drops its oldest item when full, counting the drops.

    Attributes:
        capacity: most items held.
        dropped: items dropped because the ring was full.
    """

    def __init__(self, capacity):
        """An empty ring of ``capacity`` (>= 1) items."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.dropped = 0
        self._items = []

    def __len__(self):
        """Items waiting."""
        return len(self._items)

    def push(self, item):
        """Add at the end; drop (and count) the oldest if full."""
        if len(self._items) >= self.capacity:
            self._items.pop(0)
            self.dropped += 1
        self._items.append(item)

    def peek(self):
        """The oldest item (IndexError if empty)."""
        return self._items[0]

    def pop(self):
        """Remove and return the oldest item."""
        return self._items.pop(0)


class SensorNode:
    """Base of the nodes: subclasses implement :meth:`read_values`.

    Args:
        hal: the board (:class:`firmware_stubs.hal.Hal`).
        device_id: the node's id in the site file (also its MQTT client id).
        site: the site id (first topic level after ``rst``).
        host: broker host.
        port: broker port.
        period_ms: time between readings in :meth:`run`.
        buffer_size: readings kept while the broker is away.
        keepalive_s: MQTT keepalive.
        timeout_s: socket timeout for connect and for each acknowledgement.
        backoff_ms: (first, most) reconnect delay.
        client_factory: makes an MQTT client (default :data:`mqtt_compat.Client`).

    Attributes:
        seq: number of the last reading.
        ring: readings not yet acknowledged by the broker.
        sent: readings acknowledged.
        read_errors: readings skipped because a sensor failed.
        connects: successful connects.
    """

    role = "sensor"

    def __init__(
        self, hal, device_id, site, host, *, port=1883, period_ms=5000, buffer_size=200,
        keepalive_s=60, timeout_s=5.0, backoff_ms=(500, 30000), client_factory=None,
    ):  # fmt: skip
        """Set up; nothing touches the network until :meth:`step` or :meth:`run`."""
        self.hal = hal
        self.device_id = device_id
        self.host, self.port = host, port
        self.period_ms = period_ms
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.backoff_min_ms, self.backoff_max_ms = backoff_ms
        self.client_factory = client_factory or mqtt_compat.Client
        root = "rst/" + site + "/device/" + device_id
        self.status_topic = root + "/status"
        self.telemetry_topic = root + "/telemetry"
        self.seq = 0
        self.ring = Ring(buffer_size)
        self.sent = 0
        self.read_errors = 0
        self.connects = 0
        self.client = None
        self._backoff_ms = self.backoff_min_ms
        self._next_try_ms = hal.ticks_ms()

    # ---- to be provided by a node ----------------------------------------------------------

    def read_values(self):
        """This node's reading as a dict of field id -> value (may raise OSError)."""
        raise NotImplementedError

    # ---- the loop --------------------------------------------------------------------------

    def run(self, readings=None):
        """Read, connect when due, send, sleep; forever or for ``readings`` readings."""
        done = 0
        while readings is None or done < readings:
            self.step()
            done += 1
            self.hal.sleep_ms(self.period_ms)

    def step(self):
        """One pass: take a reading, reconnect if due, send what is waiting, keep alive."""
        self.sample()
        self.service()

    def sample(self):
        """Take one reading into the ring (skipped and counted if a sensor fails)."""
        try:
            values = self.read_values()
        except OSError:
            self.read_errors += 1
            return
        self.seq += 1
        message = {
            "v": 1, "device": self.device_id, "seq": self.seq, "at": self.hal.utc_iso(),
            "values": values,
        }  # fmt: skip
        self.ring.push(json.dumps(message))

    def service(self):
        """Reconnect if due, then send the ring oldest first and keep the connection alive."""
        if self.client is None:
            if self.hal.ticks_diff(self.hal.ticks_ms(), self._next_try_ms) < 0:
                return
            if not self.connect():
                return
        try:
            while len(self.ring):
                self.client.publish(self.telemetry_topic, self.ring.peek(), retain=False, qos=1)
                self.ring.pop()  # only once the broker has it
                self.sent += 1
            self.client.poll()
        except OSError:
            self._lost()

    def connect(self):
        """Connect with the last will and say ``online``; False (and back off) on failure."""
        client = self.client_factory(
            self.device_id, self.host, self.port, self.keepalive_s, self.timeout_s
        )
        client.set_last_will(self.status_topic, self.status("offline"), retain=True, qos=1)
        try:
            client.connect()
            client.publish(self.status_topic, self.status("online"), retain=True, qos=1)
        except OSError:
            client.abort()
            self._schedule_retry()
            return False
        self.client = client
        self.connects += 1
        self._backoff_ms = self.backoff_min_ms
        return True

    def stop(self):
        """Say ``offline`` and disconnect politely (so the will is not needed)."""
        if self.client is None:
            return
        try:
            self.client.publish(self.status_topic, self.status("offline"), retain=True, qos=1)
            self.client.disconnect()
        except OSError:
            self.client.abort()
        self.client = None

    def status(self, state):
        """The retained presence payload for ``state`` (online / offline)."""
        return json.dumps({"v": 1, "device": self.device_id, "state": state, "role": self.role})

    def _lost(self):
        self.client.abort()
        self.client = None
        self._schedule_retry()

    def _schedule_retry(self):
        delay = self._backoff_ms + self.hal.rand_ms(self._backoff_ms // 2)
        self._next_try_ms = self.hal.ticks_add(self.hal.ticks_ms(), delay)
        self._backoff_ms = min(self._backoff_ms * 2, self.backoff_max_ms)
