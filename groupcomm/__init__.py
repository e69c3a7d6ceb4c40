"""groupcomm: Spread-style group communication with Extended Virtual Synchrony."""

__version__ = "0.1.0"
