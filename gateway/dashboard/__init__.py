"""The admin dashboard: server-rendered pages over the services' public APIs, behind the gateway."""
