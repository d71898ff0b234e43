"""Reference firmware for the MQTT sensor nodes (MicroPython), also runnable under CPython.

Copy the package to a board (``mpremote cp -r firmware_stubs :``) with ``umqtt.simple``
installed (``mpremote mip install umqtt.simple``) and start a node from ``main.py``::

    from firmware_stubs.hal import BoardHal
    from firmware_stubs.scale_node import ScaleNode

    hal = BoardHal(hx711_dout=4, hx711_sck=5, counts_per_g=420.0, battery_adc=34)
    ScaleNode(hal, "scale-3", site="demo", host="192.168.1.10").run()

Modules:

* :mod:`firmware_stubs.hal` -- the hardware layer the node code uses, and a board implementation;
* :mod:`firmware_stubs.mqtt_compat` -- one small MQTT client API over ``umqtt.simple``
  (MicroPython) or paho-mqtt (CPython, driven synchronously, no thread);
* :mod:`firmware_stubs.node` -- what every node does: last will, presence, numbered telemetry,
  a bounded drop-oldest buffer while the broker is away, resent in order when it is back;
* :mod:`firmware_stubs.scale_node`, :mod:`firmware_stubs.fridge_probe` -- the two nodes
  (profiles ``scale-node`` and ``fridge-probe-node``);
* :mod:`firmware_stubs.sim_hal` -- a simulated board for CPython tests (not for MicroPython).

The node modules use only what MicroPython has: no dataclasses, typing, asyncio or enum, no
annotations (documented in docstrings instead), plain classes, ``json`` and ``OSError``.
"""
