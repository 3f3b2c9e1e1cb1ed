"""The flight domain: events, their validation and derived fields, and the one schema."""
