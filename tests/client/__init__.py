"""opwatch_client and the example subscriber built on it."""
