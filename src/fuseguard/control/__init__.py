"""Control loop: samples -> allocation -> setpoints; watchdogs, fallbacks, targets."""
