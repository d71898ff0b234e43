"""MQTT transport: the paho adapter (``mqtt``) and brokers for tests and the demo (``broker``)."""
