"""`kubectl audit status`: is audit logging on, healthy and CIS-compliant on every control plane.

- `health`: the apiserver container's readiness and restarts, from its mirror pod's status.
- `report`: one `NodeStatus` per control-plane node and the `ClusterStatus` around them,
  computed from API objects alone (pure; `apiserver.state` does most of the work).
- `deep`: what the log directory and the policy file on the node say (pure analysis of
  listings and first/last lines: event times, write rate, retention, free disk).
- `logproxy`: reading a log directory through the kubelet `/logs` node proxy (I/O).
- `k3s`: the embedded apiserver's flags from the k3s service log (`--deep`).
- `collect`: gathering everything from the cluster (I/O).
- `render`: the kubectl-style table and the details/problems below it.

The `-o json` / `-o yaml` shape is a contract (additive changes only)::

    {
      "apiVersion": "kubectl-audit.io/v1",
      "kind": "AuditStatus",
      "ok": bool,                       # exit status 0 <=> ok
      "serverVersion": "v1.36.0",
      "distribution": {"kind": "kubeadm|k3s|rke2|eks|gke|aks|unknown",
                       "evidence": [str], "instructions": str},
      "nodes": [{
        "node": str,
        "ok": bool,                     # audit on, no error, apiserver ready
        "pod": str | null,              # the kube-apiserver mirror pod
        "runsAs": "static-pod|k3s",     # k3s: in the k3s process, flags from its service log
        "audit": {...} | null,     # AuditState.to_dict() without problems/cis
        "flags": [{"name": "--audit-log-path", "value": str | null}],
        "mounts": {"policy": Mount | null, "log": Mount | null},   # null for k3s
            # Mount = {"mountPath", "hostPath", "type", "readOnly", "volume"}
        "apiserver": {"phase", "ready", "restarts", "state", "lastTermination"} | null,
        "policy": {"sha256": str | null, "identifiedAs": str | null, "source": str},
        "cis": [{"id", "benchmark", "title", "status": "PASS|FAIL|WARN", "detail"}],
        "problems": [{"severity": "error|warning", "code", "message", "flag", "hint",
                      "upstream"}],
        "deep": null | {                # only with --deep
          "manifest": null | {"path", "auditFlags": [{"name", "value"}] | null,
                       "matchesRunning": bool | null},   # null: does not parse
          "log": null | {"via", "directory", "files": [{"name", "size", "modified",
                  "rotatedAt", "compressed", "firstEvent"}], "totalBytes", "oldestEvent",
                  "newestEvent", "bytesPerHour", "rateMeasuredOverSeconds",
                  "retentionSeconds", "retentionBoundBy": "size|maxage|null", "freeBytes"},
          "policy": null | {"path", "exists", "sha256", "matchesAnnotation", "errors",
                     "lintWarnings"},
          "skipped": [str]              # what could not be read, and why
        }
      }]
    }

Times are RFC 3339 UTC strings; sizes are bytes. `problems` holds the deep findings too.
"""
