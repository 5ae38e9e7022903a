"""`refunds bench`'s parts (dev-only, like the sandboxes): the bare workflow the product is
compared with, its worker, and the pure pieces of the measurement (percentiles, /proc CPU times,
history shapes). The command itself is `refunds/cli/bench.py`."""
