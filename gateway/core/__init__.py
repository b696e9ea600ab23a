"""The domain core: values, errors, the trace lifecycle, deadlines, the pure `decide` and the audit chain's rules.

Nothing here awaits, reads a database or touches the network; everything takes and returns frozen values.
"""
