"""The outbox: sealing gateway messages for the wire, and the relay that publishes committed rows."""
