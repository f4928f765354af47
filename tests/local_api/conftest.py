"""Shared fixtures of the local API tests."""

from __future__ import annotations

import pytest
from localapi_support import FUSE_A, StaticLiveData

from fuseguard.api.local import LiveData
from fuseguard.control.flex import FlexManagement, MemoryFlexStore
from fuseguard.model.clock import VirtualClock
from fuseguard.model.phases import Phases
from fuseguard.model.status import PlugStatus


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def store() -> MemoryFlexStore:
    return MemoryFlexStore()


@pytest.fixture
def flex(clock: VirtualClock, store: MemoryFlexStore) -> FlexManagement:
    return FlexManagement(
        clock, fuse_a=FUSE_A, timeout_s=120.0, default_fallback_a=10.0, store=store
    )


@pytest.fixture
def live() -> StaticLiveData:
    return StaticLiveData(
        LiveData(
            active_power_w=9200.0,
            reactive_power_var=-150.0,
            current_a=Phases(10.0, 12.5, 17.5),
            voltage_v=Phases(230.0, 231.0, 229.0),
            status=PlugStatus.CHARGING,
        )
    )
