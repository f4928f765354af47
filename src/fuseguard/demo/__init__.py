"""``fuseguard demo``: a whole simulated site on one laptop.

A virtual CEMM meter, two virtual Bender charge controllers (different firmware, a 1-phase car,
rotated wiring) and a virtual OCPP 1.6J charge point (bay-3, which connects to the edge's own
central system) run on loopback on the real wire protocols, over one shared site model
(building load, PV, the cars). ``bay-3`` sits in a garage sub-distribution (20 A, its own
household load) metered by a virtual Eastron SDM630, and a virtual SunSpec inverter is the PV
input (:func:`_serve_meters`). Cars arrive and leave. The edge connects to them exactly as to real
devices and serves the local API, the Modbus twin, the EVSE API and the web dashboard (user
``demo``, an admin). The URLs and credentials are printed and written to ``DATA_DIR/demo.json``.
"""

from fuseguard.demo.config import demo_config, integrations_config
from fuseguard.demo.run import run_demo, write_private
from fuseguard.demo.site import (
    BAYS,
    DEMO_EDGE_ID,
    DEMO_FUSE_A,
    DEMO_GARAGE,
    DEMO_GARAGE_FUSE_A,
    DEMO_OCPP_ID,
    DEMO_WEB_USER,
    DemoBay,
    car_traffic,
    demo_base_load,
)

__all__ = [
    "BAYS",
    "DEMO_EDGE_ID",
    "DEMO_FUSE_A",
    "DEMO_GARAGE",
    "DEMO_GARAGE_FUSE_A",
    "DEMO_OCPP_ID",
    "DEMO_WEB_USER",
    "DemoBay",
    "car_traffic",
    "demo_base_load",
    "demo_config",
    "integrations_config",
    "run_demo",
    "write_private",
]
