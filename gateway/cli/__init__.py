"""The `tracegate` command, one module per command group (`main` assembles them)."""
