"""Handlers of consumed events (the customer service consumes none)."""
