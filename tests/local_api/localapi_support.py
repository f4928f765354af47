"""Constants shared by the local API tests (conftest fixtures use them too)."""

from __future__ import annotations

USER = "ems"
PASSWORD = "s3cret-local-api"
FUSE_A = 63.0
