"""HTTP API (FastAPI) over the study database."""
