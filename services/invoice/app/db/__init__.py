"""SQLAlchemy models of the invoice schema and the number series."""
