"""Payment service: payment methods (tokens only, never card numbers), charges and refunds."""
