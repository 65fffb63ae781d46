"""Customer service: customers, roles and API keys; issues the access tokens every service verifies."""
