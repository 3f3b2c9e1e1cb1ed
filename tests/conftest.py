"""Fixtures shared by every test package."""

pytest_plugins = ["bigquery_emulator", "pubsub_emulator"]
