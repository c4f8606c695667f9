"""Request validation and normalisation: what the HTTP layer accepts, in OpenAI's error terms."""
