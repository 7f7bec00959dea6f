"""Exec in a pod over the Kubernetes websocket protocol, binary-safe (kubernetes>=37)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from kubectl_audit.node.shell import CommandResult, StreamLost

log = logging.getLogger(__name__)

_CHUNK_WAIT = 0.5
_STDIN_FRAME = 256 * 1024


def exec_in_pod(
    core_api,  # kubernetes.client.CoreV1Api
    namespace: str,
    pod: str,
    container: str,
    argv: Sequence[str],
    *,
    timeout: float,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run argv in the container; raise StreamLost if the stream ends without an exit code.

    `stdin` is sent whole, then closed where the protocol allows it (v5.channel.k8s.io);
    with v4 the command must stop reading by itself (`head -c N`).
    """
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream
    from websocket import WebSocketException

    try:
        client = stream(
            core_api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            container=container,
            command=list(argv),
            stdin=stdin is not None,
            stdout=True,
            stderr=True,
            tty=False,
            binary=True,
            _preload_content=False,
        )
    except ApiException as error:
        if error.status == 0:
            raise StreamLost(str(error.reason)) from None
        raise
    stdout = bytearray()
    stderr = bytearray()
    deadline = time.monotonic() + timeout
    try:
        if stdin is not None:
            try:
                _send_stdin(client, stdin)
            except (OSError, ValueError, WebSocketException) as error:
                raise StreamLost(f"exec stream lost while sending input: {error}") from None
        while client.is_open():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{argv[0]} did not finish within {timeout:.0f}s")
            try:
                client.update(timeout=_CHUNK_WAIT)
            except (OSError, ValueError, WebSocketException) as error:
                # The connection dropped: the API server restarted under us.
                raise StreamLost(f"exec stream lost: {error}") from None
            stdout += client.read_stdout(timeout=0) or b""
            stderr += client.read_stderr(timeout=0) or b""
        stdout += client.read_stdout(timeout=0) or b""
        stderr += client.read_stderr(timeout=0) or b""
        try:
            code = client.returncode
        except (TypeError, KeyError, ValueError, IndexError):
            code = None
        if code is None:
            raise StreamLost("exec stream closed without an exit status")
        return CommandResult(int(code), bytes(stdout), bytes(stderr))
    finally:
        try:
            client.close()
        except (OSError, WebSocketException) as error:
            log.debug("the exec stream was already gone when closing it: %s", error)


def _send_stdin(client, data: bytes) -> None:  # client: kubernetes.stream.ws_client.WSClient
    for start in range(0, len(data), _STDIN_FRAME):
        client.write_stdin(data[start : start + _STDIN_FRAME])
    if client.subprotocol == "v5.channel.k8s.io":
        client.close_channel(0)
