"""Talking to Azure: the managed identity and its tokens, the REST transport, Storage clients."""
