"""Development and demonstration: the demo, sample messages, a development PKI, simulated national systems.

Not the production path: `serve` imports nothing from here."""
