"""Notifier persistence: tables in the `notifier` schema."""
