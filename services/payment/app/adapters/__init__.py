"""Adapters to the outside world (the card provider)."""
