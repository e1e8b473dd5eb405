"""The operator's pure core: scaling decisions, rates over counter windows, forgotten-ack watch."""
