"""The HTTP edge: routes, content negotiation and problem+json errors."""
