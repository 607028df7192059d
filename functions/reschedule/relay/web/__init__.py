"""HTTP mechanics of the HTTP door: body decoding, CORS headers, form redirects, problems, OpenAPI shapes."""
