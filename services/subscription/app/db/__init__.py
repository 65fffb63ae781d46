"""Database models and queries of the subscription service."""
