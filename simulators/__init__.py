r"""Simulated restaurant devices for tests, benchmarks and the demo; each runs alone too.

``simulators.tablets`` -- :class:`~simulators.tablets.TabletFleet`: N order tablets
(``tablet-01`` ...), each its own MQTT client with a retained ``online`` status and an ``offline``
last will. Orders use the site's real menu items, modifiers, tables and courses, and arrive as a
Poisson process following a dinner rush (:mod:`simulators.arrivals`), at a fixed rate, or as a
burst. Each tablet records the one final reply per ``order_id`` and resends the same bytes when no
reply came within ``reply_timeout_s``. Knobs: deliberate duplicates, malformed orders of every
kind, voids and course firing, MQTT 5 request/response::

    python -m simulators.tablets --url mqtt://127.0.0.1:1883 --config examples/demo-site.toml \\
        --rate 60 --speed 20 --malformed-fraction 0.05

``simulators.kds`` -- :class:`~simulators.kds.KitchenScreens`: one screen per station
(``kds-{station}``) with presence, a last will and heartbeats. A screen shows each
``(ticket_id, version)`` at most once, acks duplicates again, replaces on a higher version,
ignores a lower one, and bumps when the cook is done (prep time scaled by ``speed``).
``silence(station)`` stops one screen's heartbeats and acks (backup-redirect tests)::

    python -m simulators.kds --url mqtt://127.0.0.1:1883 --config examples/demo-site.toml --speed 20

``simulators.appliances`` -- :class:`~simulators.appliances.server.SimulatedAppliance`: one
pymodbus TCP server per shipped Modbus profile, its registers laid out from the profile itself,
with simple physics (fridges warm with the door open, fryers heat and their oil degrades, scales
lose weight) and faults on command or on a schedule (hang, gone, stuck sensor, compressor)::

    python -m simulators.appliances --config SITE.toml --speed 60 --activity

Tablets and screens keep bounded records (last N plus counters) unless ``record_all=True``; the
pure parts (arrivals, order generation, screen state, statistics) have no I/O and take a seeded RNG.
"""
