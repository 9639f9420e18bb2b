"""views of credits (filled in with the capability)."""
