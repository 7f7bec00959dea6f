"""Talking to the Kubernetes API: client construction, plain-JSON requests, error translation."""
