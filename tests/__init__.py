import os

# Every event Rejoinder emits is validated against its openai SDK type (see engine/events.py);
# set here, before any rejoinder module is imported, and inherited by servers run as processes.
os.environ.setdefault("REJOINDER_VALIDATE_EVENTS", "1")
