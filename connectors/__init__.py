"""Connectors: one module per provider or family, registered under ``gateway.connectors``."""
