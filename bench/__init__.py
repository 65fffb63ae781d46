"""The benchmark (`make bench`): the machine's ceiling, then the billing engine's flows measured against it."""
