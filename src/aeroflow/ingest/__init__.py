"""Ingest: Pub/Sub push and pull in, validation, group commit into the storage port."""
