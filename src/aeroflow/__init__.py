"""aeroflow: flight status events in through Pub/Sub, stored for analytics, served over HTTP."""

__version__ = "0.1.0"
