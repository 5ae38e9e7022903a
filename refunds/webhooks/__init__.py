"""The shops' webhooks (issue 13): how a delivery is signed and where it may go."""
