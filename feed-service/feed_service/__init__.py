"""feed_service."""
