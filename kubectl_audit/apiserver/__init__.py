"""Pure functions over the kube-apiserver static-pod manifest and its flags (no I/O)."""
