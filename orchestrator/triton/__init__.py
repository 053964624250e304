"""Everything that talks to Triton: the local launcher (and later the clients)."""
