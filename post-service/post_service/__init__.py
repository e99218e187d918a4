"""post_service."""
