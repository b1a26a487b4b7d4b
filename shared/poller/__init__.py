"""The poller: follows runs in flight, records how they end, and raises alerts."""
