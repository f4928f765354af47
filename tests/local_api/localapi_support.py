"""Constants and a live-data stand-in shared by the local API tests (conftest uses them too)."""

from __future__ import annotations

from fuseguard.api.local import LiveData

USER = "ems"
PASSWORD = "s3cret-local-api"
FUSE_A = 63.0


class StaticLiveData:
    """A :class:`fuseguard.api.local.LiveDataSource` holding one settable value."""

    def __init__(self, data: LiveData) -> None:
        self.data = data

    def live_data(self) -> LiveData:
        """The value last set."""
        return self.data
