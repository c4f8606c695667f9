"""The HTTP layer: routes, auth, error bodies and SSE framing. No business logic lives here."""
