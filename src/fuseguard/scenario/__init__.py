"""fuseguard.scenario."""
