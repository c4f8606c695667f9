"""Sealed blobs: data the server hands a client to give back later, unreadable and unforgeable
by it (encrypted reasoning, compaction summaries). ``sealing.py`` seals and opens; ``keys.py``
finds the key ring in the settings or the data directory."""
