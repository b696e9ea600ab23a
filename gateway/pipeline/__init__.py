"""The path of one inbound message: stateless checks, then the group committer (load, decide, sign, commit)."""
