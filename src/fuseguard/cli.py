"""Command line interface (placeholder replaced below)."""


def main() -> None:
    """Entry point."""
