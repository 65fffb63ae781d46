"""Use cases over the database and the gateway: charging, refunding, reconciling."""
