"""A virtual OCPP 1.6J charge point (client side) over the charge-point core."""
