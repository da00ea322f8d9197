"""The use cases over fakes at the boundaries (tests/fakes.py), on an injected clock."""
