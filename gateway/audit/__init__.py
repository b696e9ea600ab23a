"""The auditor's side: signed checkpoints, verifying the chain against everything stored, export and replay."""
