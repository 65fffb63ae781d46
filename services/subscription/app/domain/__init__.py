"""Pure subscription logic (periods, proration, statuses): no I/O, time passed in explicitly."""
