"""The inference service: FastAPI over the versioned model repository (see docs/app.md)."""
