"""Driver for the Bender CC612/CC613 charge controller (Mennekes AMTRON Professional, Webasto
Live, Garo GLB, ... : devices.md section 4).

Control path: Modbus TCP (the lean client of :mod:`fuseguard.devices.modbus`), register 1000 =
HEMS current limit (0 pauses, 6..max A), 131/132 = the charger's own fallback (safe current after
a communication timeout). State and
measurements come from the Modbus registers; the legacy REST text API (``/rest/full_state``,
optional, ``use_rest``) adds what Modbus lacks: authorisation state, error names, cable rating,
the full firmware version. Register numbers come from :mod:`fuseguard.wire.bender`, shared with
the virtual device.

The package: :mod:`~fuseguard.devices.bender.rest` parses the REST text by key,
:mod:`~fuseguard.devices.bender.modbus` is the Modbus link and the register decoding,
:mod:`~fuseguard.devices.bender.checks` the plausibility of every sample, and
:mod:`~fuseguard.devices.bender.charger` the driver itself.

Errors (:mod:`fuseguard.control.ports`): refused/reset -> ``DeviceConnectionError``; no answer in
``request_timeout_s`` -> ``DeviceTimeoutError``; 401/403 -> ``DeviceAuthError``; an error status,
a Modbus exception or anything that is not valid data (garbage, an implausible or non-finite
value) -> ``DeviceResponseError`` whose message names the device and the reason. Connection
errors are retried with exponential backoff (tenacity, ``retry_attempts``/``retry_backoff_s``);
garbage is not. REST goes through the one HTTP transport of :mod:`fuseguard.devices.http`.

Read cadence: every :meth:`BenderCharger.read` reads the Modbus state (the live values: CP and
OCPP state, errors, phase currents, power, signalled current, limit). The REST ``full_state``
(authorisation, error names, cable rating, firmware) is fetched again only when it is older than
``rest_interval_s`` (default 10 s, on the injected clock), or when the Modbus state that REST
describes changed since the last fetch (CP state, OCPP state, an offered current appearing or
disappearing, i.e. an authorisation, or the error bits), or on every read when the Modbus meter
registers are unavailable (then REST carries the live currents). ``rest_interval_s=0`` fetches
REST on every read.

For connector 2 of a twin controller use ``modbus_port=503`` (base + 1) and ``use_rest=False``:
the legacy REST API only describes connector 1.
"""

from fuseguard.devices.bender.charger import MIN_CURRENT_A, BenderCharger
from fuseguard.devices.bender.checks import (
    MAX_PLAUSIBLE_CURRENT_A,
    MAX_PLAUSIBLE_POWER_W,
    PHASE_IN_USE_A,
    check_sample,
)
from fuseguard.devices.bender.modbus import BenderModbusLink, BenderModbusState
from fuseguard.devices.bender.rest import (
    BenderParseError,
    BenderRestState,
    parse_full_state,
    parse_single_key,
)

__all__ = [
    "MAX_PLAUSIBLE_CURRENT_A",
    "MAX_PLAUSIBLE_POWER_W",
    "MIN_CURRENT_A",
    "PHASE_IN_USE_A",
    "BenderCharger",
    "BenderModbusLink",
    "BenderModbusState",
    "BenderParseError",
    "BenderRestState",
    "check_sample",
    "parse_full_state",
    "parse_single_key",
]
