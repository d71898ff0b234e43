"""One module per service of the gateway: how it is built from the :class:`~gateway.wiring.Wiring`.

A plug builds its service and the adapters it needs, enters it through the supervisor, and puts
what it made on the wiring for the plugs after it; a plug whose service the site has no use for
(no appliances, say) does nothing. ``gateway.app.PLUGS`` lists them in start order: adding a
service is a module here and a line there.
"""
