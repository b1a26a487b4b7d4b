"""Configuration: app settings, the target catalog and Azure's naming rules."""
