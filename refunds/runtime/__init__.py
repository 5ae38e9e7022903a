"""Process wiring shared by the API, the worker and the CLI: Temporal client, logging."""
