"""Reading, filtering and merging audit logs (`kubectl audit logs`).

Pipeline: `sources` (one LogSource per node: blocks of whole lines, oldest first) ->
`scan` (byte prefilter from `filters`, then orjson + the exact predicate, only for
candidate lines) -> `merge` (heap merge by event time across nodes) -> `query`
(--limit/--tail) -> `output` (streaming renderers); `follow` tails the current logs.

Decisions, where the issue left room:
* Event time = `stageTimestamp` (when the apiserver wrote the event, the log's own order),
  falling back to `requestReceivedTimestamp`, then v1beta1's `timestamp`. TIME, --since,
  --until and the merge all use it. Table TIME is RFC 3339 UTC to the second
  (`2026-01-21T10:00:01Z`); `-o wide` adds LATENCY = stage - received.
* `--user` also matches the impersonated user (`system:admin as bob` in the table);
  globs are fnmatch, case-sensitive. `--resource pods` means no subresource, `pods/*` all
  of them, like an audit policy. `--user-agent` text matches anywhere, a glob the whole.
* Namespaces: all unless `-n` (like the logs themselves); `-n` with `-A` is an error.
* Exit 0 when the query ran, even with no match (like kubectl get; "No matching audit
  events." on stderr for tables), 2 for usage errors and unreadable/missing files.
* Whole-file JSON documents (pretty-printed events, JSON arrays, EventLists) are detected
  and read (`-o jsonl` then prints them compact); anything else that is not an audit event
  line is skipped and counted in one warning (`{"kind": 0}`, garbage, invalid UTF-8, a
  truncated last line). Counted among the lines the prefilter lets through, and always
  a file's unterminated last line.
* Naming the current log (`audit.log`) also reads its lumberjack backups; backups named
  wholly outside --since/--until are not opened; a file is judged by the rotation times
  in its own and its predecessor's name, with 5 minutes of slack for buffered writers.
  Inside a file, 1 MiB blocks whose first and last events lie more than a minute outside
  the window are skipped without parsing (a log is written in time order).
* Reading the cluster: `cluster.py` finds each control-plane node's log from its running
  apiserver's flags and reads it through the kubelet /logs proxy (under /var/log) or the
  node-agent pod (grep -F prefilter and gzip on the node), nodes in parallel.
"""
