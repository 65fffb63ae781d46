"""Plumbing shared by the billing services: events, outbox/inbox, AMQP, DB, settings, logging, auth.

No business rules live here; each service owns its own.
"""
