"""fuseguard.sim."""
