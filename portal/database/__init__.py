"""Database plumbing: the embedded server, provisioning, the per-transaction tenant context."""
