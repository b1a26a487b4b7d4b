"""The offline stack: an emulator of the Azure services the gateway calls, Azurite, a local
Functions host and the demo. Nothing here is deployed; it exists so the real app can be run and
tested end to end without Azure."""
