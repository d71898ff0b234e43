"""Orders to tickets: validation and pricing, station routing, fire timing, order state.

Everything here is pure (no I/O, time injected) except :mod:`gateway.routing.service`, which
turns typed inbound events into typed outbound messages and durable state, and the two parts it
owns: :mod:`~gateway.routing.screens` (silent screens) and :mod:`~gateway.routing.resends`
(tickets awaiting a screen's ack).
"""
