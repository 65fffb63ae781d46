"""Payment persistence: tables in the `payment` schema."""
