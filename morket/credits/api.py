"""api of credits (filled in with the capability)."""
