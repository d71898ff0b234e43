"""Appliances and sensors: device profiles, register codecs, Modbus polling, guarded writes."""
