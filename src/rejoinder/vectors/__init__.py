"""Vector stores: files chunked, embedded and indexed in the database, searched by meaning and words."""
