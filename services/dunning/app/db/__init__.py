"""Tables and queries of the dunning schema."""
