"""Workers: the claim loop, leases and heartbeats, retries, and task handlers."""
