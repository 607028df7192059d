"""Build tools: the Lambda artifacts and the OpenAPI document (run as python -m tools.<name>)."""
