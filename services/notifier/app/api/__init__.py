"""HTTP API of the notifier service."""
