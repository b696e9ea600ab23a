"""Routing: the administrators' table of connected states and the rules of ISACS 05.31, 8.1."""
