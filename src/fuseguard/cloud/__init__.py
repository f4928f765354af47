"""fuseguard.cloud."""
