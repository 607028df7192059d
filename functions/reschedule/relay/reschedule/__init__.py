"""The use case: a RescheduleCommand run once per idempotency key, its attempts recorded."""
