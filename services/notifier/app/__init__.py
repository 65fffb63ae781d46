"""Notifier service: the only service that sends email; it turns billing events into emails."""
