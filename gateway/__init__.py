"""The gateway itself: what it serves beside the two services (its OpenAPI document)."""
