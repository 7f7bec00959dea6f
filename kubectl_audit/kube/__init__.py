"""Talking to the Kubernetes API: client construction and error translation."""
