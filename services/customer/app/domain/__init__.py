"""Customer domain rules (pure)."""
