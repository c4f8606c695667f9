"""Use cases between the HTTP layer and the engine/store: create, fetch, list, delete, cancel."""
