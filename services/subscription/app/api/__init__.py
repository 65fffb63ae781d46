"""HTTP API of the subscription service."""
