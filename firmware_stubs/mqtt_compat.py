"""One small, blocking MQTT client API for the nodes: ``umqtt.simple`` or paho-mqtt.

On MicroPython :class:`Client` wraps ``umqtt.simple.MQTTClient``; on CPython it drives a paho
client synchronously (``loop()`` calls, no network thread), so node code and tests behave the
same way: every call returns when done or raises ``OSError``.

* ``connect()`` returns after a successful CONNACK (MQTT 3.1.1, clean session);
* ``publish(..., qos=1)`` returns after the broker's PUBACK;
* ``poll()`` keeps the connection alive (PINGREQ when due) and notices a dead one;
* ``disconnect()`` is polite (the broker discards the will); ``abort()`` just closes the socket,
  like a power cut, so the broker publishes the will.

MicroPython code: no annotations, no typing, no dataclasses.
"""

# ruff: noqa: ANN001, ANN202, ANN204, ANN205, SIM105
# MicroPython: no annotations (CPython would evaluate them, some ports cannot parse them), and
# no contextlib.suppress (not built in).

try:
    from umqtt.simple import MQTTClient as _UMQTTClient
    from umqtt.simple import MQTTException as _UMQTTError
except ImportError:  # CPython
    _UMQTTClient = None
    _UMQTTError = OSError

__all__ = ["Client"]


class _UmqttClient:
    """``umqtt.simple`` behind the common API (MicroPython)."""

    def __init__(self, client_id, host, port=1883, keepalive_s=60, timeout_s=5.0):
        self._c = _UMQTTClient(client_id, host, port=port, keepalive=keepalive_s)
        self._keepalive_ms = keepalive_s * 1000
        self._timeout_s = timeout_s
        self._last_ms = 0

    def set_last_will(self, topic, payload, retain=False, qos=0):
        self._c.set_last_will(topic, payload, retain=retain, qos=qos)

    def connect(self):
        try:
            self._c.connect(clean_session=True)
        except _UMQTTError as exc:  # a refused CONNACK
            raise OSError("MQTT connect refused: " + str(exc)) from None
        # Without a timeout a publish would wait forever for a PUBACK from a hung broker.
        self._c.sock.settimeout(self._timeout_s)
        self._touch()

    def publish(self, topic, payload, retain=False, qos=0):
        try:
            self._c.publish(topic, payload, retain=retain, qos=qos)
        except _UMQTTError as exc:
            raise OSError("MQTT publish failed: " + str(exc)) from None
        self._touch()

    def poll(self):
        import time  # noqa: PLC0415

        if time.ticks_diff(time.ticks_ms(), self._last_ms) > self._keepalive_ms // 2:
            self._c.ping()
            self._touch()
        try:
            self._c.check_msg()  # reads PINGRESP; raises OSError on a closed socket
        except _UMQTTError as exc:
            raise OSError("MQTT protocol error: " + str(exc)) from None
        finally:
            self._c.sock.settimeout(self._timeout_s)  # check_msg leaves it blocking

    def disconnect(self):
        try:
            self._c.disconnect()
        except OSError:
            pass

    def abort(self):
        try:
            self._c.sock.close()
        except (OSError, AttributeError):
            pass

    def _touch(self):
        import time  # noqa: PLC0415

        self._last_ms = time.ticks_ms()


class _PahoClient:
    """paho-mqtt behind the common API (CPython), driven by ``loop()`` in the caller's thread."""

    def __init__(self, client_id, host, port=1883, keepalive_s=60, timeout_s=5.0):
        import paho.mqtt.client as paho  # noqa: PLC0415 -- CPython only
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self._paho = paho
        self._host, self._port, self._keepalive_s = host, port, keepalive_s
        self._timeout_s = timeout_s
        self._p = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
            clean_session=True,
        )  # fmt: skip
        self._p.on_connect = self._on_connect
        self._p.on_socket_open = self._on_socket_open
        self._connack = None

    def set_last_will(self, topic, payload, retain=False, qos=0):
        self._p.will_set(topic, payload, qos, retain)

    def connect(self):
        import time  # noqa: PLC0415

        self._p.connect(self._host, self._port, self._keepalive_s)  # OSError if refused
        deadline = time.monotonic() + self._timeout_s
        while self._connack is None:
            self._loop()
            if time.monotonic() > deadline:
                self.abort()
                raise OSError("no CONNACK within " + str(self._timeout_s) + " s")
        if self._connack != 0:
            self.abort()
            raise OSError("MQTT connect refused: " + str(self._connack))

    def publish(self, topic, payload, retain=False, qos=0):
        import time  # noqa: PLC0415

        info = self._p.publish(topic, payload, qos, retain)
        if info.rc != self._paho.MQTT_ERR_SUCCESS:
            raise OSError("MQTT publish failed: " + self._paho.error_string(info.rc))
        deadline = time.monotonic() + self._timeout_s
        while not info.is_published():
            self._loop()
            if time.monotonic() > deadline:
                raise OSError("no PUBACK within " + str(self._timeout_s) + " s")

    def poll(self):
        self._loop(0.0)

    def disconnect(self):
        self._p.disconnect()
        self.abort()

    def abort(self):
        sock = self._p.socket()
        if sock is not None:
            sock.close()

    def _loop(self, timeout_s=0.01):
        rc = self._p.loop(timeout_s)
        if rc != self._paho.MQTT_ERR_SUCCESS:
            raise OSError("MQTT connection lost: " + self._paho.error_string(rc))

    def _on_connect(self, _client, _userdata, _flags, reason, _properties):
        self._connack = reason.value

    @staticmethod
    def _on_socket_open(_client, _userdata, sock):
        import socket  # noqa: PLC0415

        # Nagle's algorithm delays small publishes by ~40 ms (MEASURED.md).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


#: The client for this interpreter: ``Client(client_id, host, port, keepalive_s, timeout_s)``.
Client = _UmqttClient if _UMQTTClient is not None else _PahoClient
