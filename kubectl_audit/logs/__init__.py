"""Reading, filtering and merging audit logs."""
