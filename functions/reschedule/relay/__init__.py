"""The reschedule relay: authenticate, validate, call the provider, record the outcome."""
