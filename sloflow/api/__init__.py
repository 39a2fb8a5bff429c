"""FastAPI application: the REST surface of sloflow."""
