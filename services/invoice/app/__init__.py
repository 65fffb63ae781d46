"""Invoice service: invoices, line items, numbering, credit notes, and their printable documents."""
