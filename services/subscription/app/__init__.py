"""Subscription service: plans, subscriptions and their billing periods."""
