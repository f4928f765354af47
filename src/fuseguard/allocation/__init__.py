"""fuseguard.allocation."""
