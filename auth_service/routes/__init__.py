"""HTTP routes: thin adapters between requests and auth_service.service."""
