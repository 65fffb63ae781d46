"""Pure notifier logic (no I/O): which event becomes which email."""
