"""The wire format: parsing bytes safely, the XSDs, XML-DSig in the contract's profile, trust, reading and
composing the contract's messages."""
