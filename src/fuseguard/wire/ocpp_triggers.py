"""When the OCPP driver asks a charge point for its meter values and status (TriggerMessage).

Shared by the driver (``devices/ocpp/triggers.py``) and the simulated OCPP charger of the
scenarios (``scenario/ocpp_adapter.py``), which answers at the driver's times; kept here, outside
``devices/ocpp``, so that a simulation does not import the ``ocpp`` library (a script in
``bench/`` has ``bench/ocpp.py`` first on its path, which shadows it).
"""

from __future__ import annotations

#: seconds after an offer to a paused connector was accepted: ask for its status and meter values
TRIGGER_AFTER_OFFER_S: tuple[float, ...] = (3.0, 8.0)
#: seconds after a connector reported Charging with no MeterValues since: ask for meter values
TRIGGER_AFTER_CHARGING_S = 2.0
START_OFFER_A = 6  #: an offer at or above this (IEC 61851 minimum) starts a paused car
FRESH_METER_S = 2.0  #: a round is skipped when MeterValues of a charging car came this recently

__all__ = ["FRESH_METER_S", "START_OFFER_A", "TRIGGER_AFTER_CHARGING_S", "TRIGGER_AFTER_OFFER_S"]
