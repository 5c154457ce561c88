"""Stage 2, schedule by host: the frontier's per-host queues and the jobs in them."""
