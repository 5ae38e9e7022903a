"""Pure domain: message types, statuses, errors and money arithmetic. Stdlib only, no I/O."""
