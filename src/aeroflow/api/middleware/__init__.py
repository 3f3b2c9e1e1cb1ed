"""Pure ASGI middleware: cheap per request, unlike Starlette's BaseHTTPMiddleware."""
