"""Host-name mapping for tests; this directory also goes first on a child's PYTHONPATH."""
