"""A federated data-sharing gateway for the built environment (DSGO)."""

__version__ = "0.1.0"
