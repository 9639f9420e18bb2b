"""Data provider adapters: one module per provider, found by the registry (see base.py)."""
