"""What the subscription service does: subscribe, change, cancel, pause, resume, bill (one transaction each)."""
