"""views of scraping (filled in with the capability)."""
