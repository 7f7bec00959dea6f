# kubectl-audit node agent: runs ON a control-plane node (as root, in the host's root
# file system), as `sh -c "$(head -c SIZE)" kubectl-audit-agent COMMAND ARGS...` with the
# script on stdin, or `sh RUNDIR/agent.sh COMMAND ARGS...` once uploaded. POSIX sh only
# (dash, bash, busybox ash): the node may have nothing else.
#
# Why the swap runs here and not from the client: on a single control-plane cluster the API,
# and with it every exec stream, goes away while kube-apiserver restarts. So `commit` starts a
# detached worker (setsid + nohup) that swaps the manifest, watches the new container through
# crictl and rolls back on its own; the client reconnects later and reads the result file.
#
# Output protocol: one `key<TAB>value` per line on stdout; file contents base64-encoded.
# Exit codes: 0 ok, 3 lock held by another run, 4 the node changed since it was inspected,
# 5 bad arguments, 6 a step failed (the message says what state the node is in).

set -u
umask 077

say() { printf '%s\t%s\n' "$1" "$2"; }
die() { code=$1; shift; say error "$*"; exit "$code"; }
have() { command -v "$1" >/dev/null 2>&1; }
now() { date +%s; }

sha256_of() {
    if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else printf 'absent'; fi
}

b64_of() { base64 "$1" | tr -d '\n'; }

# write_atomic PATH MODE: stdin -> PATH via a hidden temp file in the same directory + rename,
# so the kubelet (which ignores dot-files) never sees a half-written manifest.
write_atomic() {
    dir=$(dirname "$1")
    tmp="$dir/.$(basename "$1").kubectl-audit.$$"
    cat >"$tmp" || { rm -f "$tmp"; return 1; }
    chmod "$2" "$tmp" && sync && mv -f "$tmp" "$1"
}

lock_dir() { printf '%s/kubectl-audit.lock' "$1"; }

take_lock() {  # take_lock TMPDIR TOKEN
    mkdir -p "$1" || return 1
    lock=$(lock_dir "$1")
    if mkdir "$lock" 2>/dev/null; then
        printf '%s %s\n' "$2" "$(now)" >"$lock/owner"
        return 0
    fi
    owner=$(cat "$lock/owner" 2>/dev/null || printf 'unknown')
    die 3 "node is locked by another kubectl-audit run (owner and start time: $owner)"
}

release_lock() {  # release_lock TMPDIR TOKEN
    lock=$(lock_dir "$1")
    [ -d "$lock" ] || return 0
    read -r owner _ <"$lock/owner" 2>/dev/null || owner=""
    if [ "$owner" = "$2" ]; then rm -rf "$lock"; fi
}

# --- container runtime view -------------------------------------------------------------

apiserver_ids() {  # apiserver_ids STATE -> container ids of kube-apiserver in that state
    crictl ps -a --name '^kube-apiserver$' --state "$1" -q 2>/dev/null
}

contains_word() {  # contains_word WORD LIST
    for w in $2; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# wait_for_new_apiserver SECONDS SETTLE KNOWN_IDS
# Succeeds once a kube-apiserver container not in KNOWN_IDS (every container that existed
# before the change, running or exited) has been running for SETTLE seconds without being
# replaced. Sets NEW_ID, SEEN_NEW (a new container appeared) and CRASHES (new ones that exited).
wait_for_new_apiserver() {
    deadline=$(( $(now) + $1 ))
    NEW_ID=""
    SEEN_NEW=0
    CRASHES=0
    candidate=""
    since=0
    while [ "$(now)" -lt "$deadline" ]; do
        running=$(apiserver_ids running)
        exited=$(apiserver_ids exited)
        CRASHES=0
        for id in $exited; do
            if ! contains_word "$id" "$3"; then CRASHES=$((CRASHES + 1)); SEEN_NEW=1; fi
        done
        fresh=""
        for id in $running; do
            if ! contains_word "$id" "$3"; then fresh=$id; SEEN_NEW=1; fi
        done
        if [ -n "$fresh" ]; then
            if [ "$fresh" != "$candidate" ]; then candidate=$fresh; since=$(now); fi
            if [ $(( $(now) - since )) -ge "$2" ]; then NEW_ID=$fresh; return 0; fi
        else
            candidate=""
        fi
        # A config the apiserver rejects makes it exit within seconds, again and again.
        if [ "$CRASHES" -ge 2 ]; then return 1; fi
        sleep 1
    done
    return 1
}

known_apiserver_ids() { printf '%s %s' "$(apiserver_ids running)" "$(apiserver_ids exited)" | tr '\n' ' '; }

newest_new_container() {  # the most recent kube-apiserver container not in OLD (for its log)
    for id in $(apiserver_ids exited) $(apiserver_ids running); do
        if ! contains_word "$id" "$1"; then printf '%s' "$id"; return 0; fi
    done
}

# --- commands ----------------------------------------------------------------------------

cmd_inspect() {  # inspect MANIFEST POLICY_PATH LOG_PATH TMPDIR
    [ $# -eq 4 ] || die 5 "inspect needs MANIFEST POLICY_PATH LOG_PATH TMPDIR"
    manifest=$1; policy=$2; log=$3; tmpdir=$4
    mdir=$(dirname "$manifest")
    say manifest_dir_exists "$( [ -d "$mdir" ] && echo yes || echo no )"
    if [ -f "$manifest" ]; then
        say manifest_sha256 "$(sha256_of "$manifest")"
        say manifest_b64 "$(b64_of "$manifest")"
    else
        say manifest_sha256 absent
    fi
    if [ -d "$mdir" ]; then
        for f in "$mdir"/* ; do
            [ -e "$f" ] || continue
            say manifest_dir_file "$(basename "$f")"
        done
    fi
    say policy_sha256 "$(sha256_of "$policy")"
    logdir=$(dirname "$log")
    say log_dir_exists "$( [ -d "$logdir" ] && echo yes || echo no )"
    lock=$(lock_dir "$tmpdir")
    if [ -d "$lock" ]; then say lock "$(cat "$lock/owner" 2>/dev/null || echo unknown)"; fi
    say crictl "$(have crictl && echo yes || echo no)"
    say systemctl "$(have systemctl && echo yes || echo no)"
    say running_apiserver "$(apiserver_ids running | head -n 1)"
    say now "$(now)"
}

cmd_prepare() {
    # prepare RUNDIR TOKEN MANIFEST EXPECTED_SHA POLICY_PATH LOG_DIR
    # The new manifest is RUNDIR/new-manifest.yaml and, when the policy changes, the new
    # policy is RUNDIR/policy.new: both uploaded beforehand (upload keeps URLs short).
    [ $# -eq 6 ] || die 5 "prepare needs 6 arguments, got $#"
    rundir=$1; token=$2; manifest=$3; expected=$4; policy=$5; logdir=$6
    tmpdir=$(dirname "$rundir")
    [ -f "$rundir/new-manifest.yaml" ] || die 5 "$rundir/new-manifest.yaml was not uploaded"
    [ -e "$rundir/token" ] && die 5 "$rundir belongs to another run"
    take_lock "$tmpdir" "$token"
    actual=$(sha256_of "$manifest")
    if [ "$actual" != "$expected" ]; then
        release_lock "$tmpdir" "$token"
        die 4 "$manifest changed since it was read (sha256 $actual, expected $expected); nothing was changed, run again"
    fi
    printf '%s\n' "$token" >"$rundir/token"
    # The backup lives outside the manifests folder: the kubelet runs every non-hidden file there.
    cp -p "$manifest" "$rundir/kube-apiserver.yaml" && chmod 600 "$rundir/kube-apiserver.yaml" \
        || { release_lock "$tmpdir" "$token"; die 6 "cannot back up $manifest to $rundir; nothing was changed"; }
    say backup "$rundir/kube-apiserver.yaml"
    if [ -f "$rundir/policy.new" ]; then
        if [ -f "$policy" ]; then cp -p "$policy" "$rundir/policy.orig"; else : >"$rundir/policy.absent"; fi
        pdir=$(dirname "$policy")
        mkdir -p "$pdir" && chmod 700 "$pdir"
        write_atomic "$policy" 600 <"$rundir/policy.new" \
            || { restore_policy "$rundir" "$policy"; release_lock "$tmpdir" "$token"; die 6 "cannot write $policy; nothing was changed"; }
        say policy_written "$policy"
    fi
    if [ -n "$logdir" ]; then
        mkdir -p "$logdir" && chmod 700 "$logdir" \
            || { restore_policy "$rundir" "$policy"; release_lock "$tmpdir" "$token"; die 6 "cannot create $logdir; nothing was changed"; }
        say log_dir "$logdir"
    fi
    staged="$(dirname "$manifest")/.kube-apiserver.yaml.kubectl-audit"
    cp "$rundir/new-manifest.yaml" "$staged.tmp" && chmod 600 "$staged.tmp" && mv -f "$staged.tmp" "$staged" \
        || { rm -f "$staged.tmp"; restore_policy "$rundir" "$policy"; release_lock "$tmpdir" "$token"; die 6 "cannot stage the new manifest; nothing was changed"; }
    say staged "$staged"
    say prepared yes
}

restore_policy() {  # restore_policy RUNDIR POLICY_PATH
    if [ -f "$1/policy.orig" ]; then
        write_atomic "$2" 600 <"$1/policy.orig"
    elif [ -f "$1/policy.absent" ]; then
        rm -f "$2"
    fi
}

cmd_abort() {  # abort RUNDIR MANIFEST POLICY_PATH: undo a prepare whose commit never started
    [ $# -eq 3 ] || die 5 "abort needs RUNDIR MANIFEST POLICY_PATH"
    rundir=$1; manifest=$2; policy=$3
    [ -f "$rundir/commit.started" ] && die 6 "the commit already started; it finishes or rolls back on its own"
    if [ -f "$rundir/token" ]; then  # prepare ran: undo it
        rm -f "$(dirname "$manifest")/.kube-apiserver.yaml.kubectl-audit"
        restore_policy "$rundir" "$policy"
        release_lock "$(dirname "$rundir")" "$(cat "$rundir/token")"
    fi
    rm -f "$rundir/new-manifest.yaml" "$rundir/policy.new"
    say aborted yes
}

cmd_commit() {  # commit RUNDIR MANIFEST POLICY_PATH TIMEOUT SETTLE KUBELET_PERIOD: detach
    [ $# -eq 6 ] || die 5 "commit needs RUNDIR MANIFEST POLICY_PATH TIMEOUT SETTLE KUBELET_PERIOD"
    rundir=$1
    [ -f "$rundir/agent.sh" ] || die 5 "$rundir/agent.sh is missing"
    : >"$rundir/commit.started"
    # setsid: a session of its own, so the end of this exec stream (or of the API server
    # that carries it) does not take the worker down; it ignores SIGHUP too (no nohup in
    # busybox, so the worker does it itself).
    setsid sh "$rundir/agent.sh" commit-worker "$@" >"$rundir/commit.log" 2>&1 </dev/null &
    # Report a worker that could not start now rather than after the whole timeout.
    tries=0
    while [ ! -f "$rundir/worker.pid" ] && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
    [ -f "$rundir/worker.pid" ] || die 6 "the commit worker did not start: $(tail -n 3 "$rundir/commit.log" 2>/dev/null)"
    say commit_pid "$(cat "$rundir/worker.pid")"
}

write_result() {  # write_result RUNDIR: stdin -> RUNDIR/result, atomically
    cat >"$1/.result.tmp" && mv -f "$1/.result.tmp" "$1/result"
}

cmd_commit_worker() {
    trap '' HUP
    rundir=$1; manifest=$2; policy=$3; timeout=$4; settle=$5; period=$6
    echo $$ >"$rundir/worker.pid"
    tmpdir=$(dirname "$rundir")
    token=$(cat "$rundir/token")
    staged="$(dirname "$manifest")/.kube-apiserver.yaml.kubectl-audit"
    known=$(known_apiserver_ids)
    echo "$(date) swapping $staged -> $manifest (kube-apiserver containers before: $known)"
    : >"$rundir/swapped"
    mv -f "$staged" "$manifest" || {
        printf 'state\tfailed\nreason\tcannot move the staged manifest into place; nothing was changed\n' | write_result "$rundir"
        restore_policy "$rundir" "$policy"; release_lock "$tmpdir" "$token"; exit 6; }
    remedies=""
    if wait_for_new_apiserver "$timeout" "$settle" "$known"; then
        :
    elif [ "$SEEN_NEW" -eq 0 ]; then
        # The kubelet has not acted on the change at all: the two known remedies.
        echo "$(date) no new kube-apiserver container after ${timeout}s: moving the manifest out and back"
        remedies="moved-out-and-back"
        mv -f "$manifest" "$rundir/kube-apiserver.yaml.moved" && sleep "$period" && mv -f "$rundir/kube-apiserver.yaml.moved" "$manifest"
        if ! wait_for_new_apiserver "$timeout" "$settle" "$known" && [ "$SEEN_NEW" -eq 0 ] && have systemctl; then
            echo "$(date) still nothing: restarting the kubelet"
            remedies="$remedies,restarted-kubelet"
            systemctl restart kubelet
            wait_for_new_apiserver "$timeout" "$settle" "$known"
        fi
    fi
    if [ -n "$NEW_ID" ]; then
        echo "$(date) new kube-apiserver container $NEW_ID is running"
        { printf 'state\tcommitted\ncontainer\t%s\n' "$NEW_ID"; [ -n "$remedies" ] && printf 'remedies\t%s\n' "$remedies"; } | write_result "$rundir"
        release_lock "$tmpdir" "$token"
        exit 0
    fi
    failed=$(newest_new_container "$known")
    echo "$(date) the new kube-apiserver did not become healthy (container: ${failed:-none}); rolling back"
    if [ -n "$failed" ]; then crictl logs --tail 40 "$failed" >"$rundir/failed-container.log" 2>&1; fi
    known_before_restore=$(known_apiserver_ids)
    write_atomic "$manifest" 600 <"$rundir/kube-apiserver.yaml"
    restore_policy "$rundir" "$policy"
    if wait_for_new_apiserver "$timeout" "$settle" "$known_before_restore"; then
        restored=yes
    else
        restored=no
    fi
    {
        printf 'state\trolled-back\nold_apiserver_running\t%s\n' "$restored"
        [ -n "$failed" ] && printf 'failed_container\t%s\n' "$failed"
        [ -n "$remedies" ] && printf 'remedies\t%s\n' "$remedies"
        [ -f "$rundir/failed-container.log" ] && printf 'failed_log_b64\t%s\n' "$(b64_of "$rundir/failed-container.log")"
    } | write_result "$rundir"
    release_lock "$tmpdir" "$token"
    exit 1
}

cmd_result() {  # result RUNDIR
    [ $# -eq 1 ] || die 5 "result needs RUNDIR"
    if [ -f "$1/result" ]; then cat "$1/result"; return 0; fi
    if [ ! -f "$1/commit.started" ]; then
        say state not-started
    elif [ -f "$1/worker.pid" ] && kill -0 "$(cat "$1/worker.pid")" 2>/dev/null; then
        say state running
    elif [ -f "$1/swapped" ]; then
        say state died-after-swap
    else
        say state died-before-swap
    fi
    if [ -f "$1/commit.log" ]; then say log_b64 "$(b64_of "$1/commit.log")"; fi
}

cmd_cleanup_locks() {  # cleanup-locks TMPDIR MAX_AGE_SECONDS
    [ $# -eq 2 ] || die 5 "cleanup-locks needs TMPDIR MAX_AGE_SECONDS"
    lock=$(lock_dir "$1")
    [ -d "$lock" ] || { say lock none; return 0; }
    read -r owner started <"$lock/owner" 2>/dev/null || { owner=unknown; started=0; }
    age=$(( $(now) - ${started:-0} ))
    if [ "$age" -gt "$2" ]; then rm -rf "$lock"; say removed_lock "$owner"; else say lock_kept "$owner"; fi
}

cmd_discard() {  # discard RUNDIR: remove a run directory that holds no backup yet
    [ $# -eq 1 ] || die 5 "discard needs RUNDIR"
    if [ -f "$1/kube-apiserver.yaml" ]; then say kept "$1"; else rm -rf "$1"; say discarded "$1"; fi
}

[ $# -ge 1 ] || die 5 "usage: agent.sh COMMAND ARGS..."
command=$1
shift
case "$command" in
    inspect) cmd_inspect "$@" ;;
    discard) cmd_discard "$@" ;;
    prepare) cmd_prepare "$@" ;;
    abort) cmd_abort "$@" ;;
    commit) cmd_commit "$@" ;;
    commit-worker) cmd_commit_worker "$@" ;;
    result) cmd_result "$@" ;;
    cleanup-locks) cmd_cleanup_locks "$@" ;;
    *) die 5 "unknown command $command" ;;
esac
