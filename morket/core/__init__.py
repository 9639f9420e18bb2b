"""Cross-cutting machinery with no domain knowledge."""
