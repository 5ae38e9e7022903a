"""Gateway sandboxes: servers that speak Stripe's and WeChat Pay v3's wire protocols closely
enough for the official clients, with fault injection for tests. Dev and test only."""
