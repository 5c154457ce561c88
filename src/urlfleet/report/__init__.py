"""Stage 5, report: the run's numbers in words, JSON, and one HTML page."""
