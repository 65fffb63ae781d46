"""HTTP API of the dunning service."""
