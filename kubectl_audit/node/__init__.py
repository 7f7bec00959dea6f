"""Reaching a node: debug pod lifecycle and exec, a local root directory, the node-side agent."""
