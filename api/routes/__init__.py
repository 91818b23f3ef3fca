"""Thin routers: parse, authorize, call the repository or service, shape the response."""
