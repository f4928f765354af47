"""The MQTT interface of an edge: state, commands, Home Assistant discovery (``docs/mqtt.md``)."""
