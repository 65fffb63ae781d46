"""Pure payment rules: no I/O, fully typed, unit-tested without a database."""
