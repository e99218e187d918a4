"""user_service."""
