"""Event ingestion gateway: webhooks and pollers in, one envelope out, onto Kafka."""

__version__ = "0.1.0"
