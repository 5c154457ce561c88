"""Stage 1, read: URL lists, rows and sitemaps in; what a previous run already did."""
