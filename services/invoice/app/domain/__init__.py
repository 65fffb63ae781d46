"""Pure invoice logic (statuses, totals, numbering, due dates): no I/O, unit-tested without a database."""
