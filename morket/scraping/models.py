"""models of scraping (filled in with the capability)."""
