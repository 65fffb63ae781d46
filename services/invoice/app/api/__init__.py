"""HTTP routers of the invoice service: JSON API, credit notes, and the printable pages."""
