"""Storage: one port (``port.FlightStore``) and its adapters (DuckDB, BigQuery)."""
