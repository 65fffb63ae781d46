"""Pure dunning logic: the case state machine and the retry schedule (no I/O)."""
