"""Stage 3, fetch: one request per step through the politeness gate, retried by tenacity."""
