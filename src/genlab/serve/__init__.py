"""`genlab serve`: a REST API (FastAPI) and a web page over runs and the store (the `serve`
extra)."""
