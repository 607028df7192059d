"""Build tools: artifacts and generated files made from the code (not part of the local stack)."""
