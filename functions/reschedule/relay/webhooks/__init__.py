"""Outbound Standard Webhooks: the signed POSTs that tell a source how its requests ended."""
