"""Who is calling: the sources registry, API keys, Standard Webhooks signatures, signed links, admission."""
