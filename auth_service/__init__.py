"""OAuth 2.0 authorization server for the model gateway: client credentials, introspection,
revocation and the gateway's auth_request check. See docs/auth.md."""
