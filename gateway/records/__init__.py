"""The records register: lost, stolen, trafficked and smuggled firearms, and their matching."""
