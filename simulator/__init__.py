"""A simulated region: real HTTPS and DNS servers on loopback with switchable faults."""
