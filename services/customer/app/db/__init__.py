"""Customer persistence: tables in the `customer` schema."""
