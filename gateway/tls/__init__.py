"""Service-to-service TLS: certificates, the server's TLS context, and verified identities."""
