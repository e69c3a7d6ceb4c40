"""The sans-IO protocol core. Imports only the standard library (enforced by tests/test_layering.py)."""
