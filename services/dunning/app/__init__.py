"""The dunning service: retry schedules for failed payments, escalation, suspension and recovery."""
