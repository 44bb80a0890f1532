"""The `i2v` command line: create, batch, search and chat against the image-to-video service,
through the official `openai` client and httpx."""
