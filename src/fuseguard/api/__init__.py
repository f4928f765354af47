"""fuseguard.api."""
