"""The read API: FastAPI app factory, routes, error model, cursors, middleware."""
