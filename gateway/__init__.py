"""tracegate: a secure messaging switch for international firearm tracing (ISACS 05.31)."""

__version__ = "0.1.0"
