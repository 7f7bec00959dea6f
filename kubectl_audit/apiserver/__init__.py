"""Pure functions over the kube-apiserver static-pod manifest and its flags (no I/O).

- `problems`, `kubeversion`: a finding (`Problem`); Kubernetes versions.
- `settings`: what `enable` sets (`AuditSettings`) and the flags it implies.
- `flags`: parse a container's command line; validate `--audit-*` like kube-apiserver.
- `mounts`: are the audit paths reachable through hostPath mounts, and where on the node.
- `staticpod`: read a pod manifest or mirror pod (`StaticPod`), and enable's record in it.
- `manifest`: text-preserving `render_enabled` / `render_disabled` (re-exports the reading API).
- `yamltext`: line-level YAML editing guided by PyYAML's node tree.
- `state`: what `status` reports about one apiserver pod.
- `cis`: CIS benchmark checks with the IDs of the cluster's benchmark version.
- `kubeadm_config`: the same settings in kubeadm's ClusterConfiguration (v1beta2-v1beta4).
- `distribution`: kubeadm-style, k3s, RKE2, EKS, GKE, AKS - and what to do on each.
- `k3s`: the embedded apiserver's flags, from the k3s service log.
- `diff`: the unified diff shown by `--dry-run`.
"""
