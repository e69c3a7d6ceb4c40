"""The sans-IO protocol core: standard library only (enforced by tests/test_layering.py)."""
