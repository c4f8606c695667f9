import os
import sys

# Under pytest every event Rejoinder emits is validated against its openai SDK type (see
# engine/events.py); set before any rejoinder module is imported, and inherited by servers run as
# processes. Benchmarks import this package too, and measure production settings.
if "pytest" in sys.modules:
    os.environ.setdefault("REJOINDER_VALIDATE_EVENTS", "1")
