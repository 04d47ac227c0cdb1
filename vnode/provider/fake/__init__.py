"""An in-memory provider for tests (``provider``), declared to the core by ``profile``."""
