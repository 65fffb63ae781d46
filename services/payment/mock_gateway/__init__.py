"""A stand-in card provider (Stripe-like JSON over HTTP) that runs as its own process for tests and demos."""
