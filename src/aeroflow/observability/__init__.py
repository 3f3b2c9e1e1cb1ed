"""Metrics, structured logs and tracing; imports nothing of aeroflow above it."""
