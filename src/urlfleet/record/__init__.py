"""Stage 4, record: Result, its JSON line or CSV row, and bodies saved to disk."""
