"""fuseguard.store."""
