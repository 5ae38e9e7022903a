"""Payment gateway adapters (one protocol, one module per gateway). Nothing outside this package
knows a gateway's wire format."""
