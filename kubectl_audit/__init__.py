"""kubectl-audit: turn on, check and query Kubernetes API-server audit logging, safely."""

__version__ = "0.1.0"
