"""The gateway's public routes, one module per resource."""
