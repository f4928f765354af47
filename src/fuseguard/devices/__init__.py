"""fuseguard.devices."""
