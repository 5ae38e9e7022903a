"""Real PostgreSQL and Temporal servers run as child processes, for `refunds dev` and the tests."""
