"""Exec in a pod over the Kubernetes websocket protocol, binary-safe (kubernetes>=37)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

from kubectl_audit.kube.rest import Rest, core_path
from kubectl_audit.node.shell import CommandResult, StreamLost

log = logging.getLogger(__name__)

_CHUNK_WAIT = 0.5
_STDIN_FRAME = 256 * 1024


def exec_in_pod(
    rest: Rest,
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
    from websocket import WebSocketException

    client = open_exec(rest, namespace, pod, container, argv, stdin=stdin is not None)
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
        return CommandResult(_exit_code(client), bytes(stdout), bytes(stderr))
    finally:
        _close(client)


def _exit_code(client) -> int:  # client: kubernetes.stream.ws_client.WSClient
    """The command's exit status from the error channel; StreamLost when it never came."""
    try:
        code = client.returncode
    except (TypeError, KeyError, ValueError, IndexError):
        code = None
    if code is None:
        raise StreamLost("exec stream closed without an exit status")
    return int(code)


def _close(client) -> None:  # client: kubernetes.stream.ws_client.WSClient
    from websocket import WebSocketException

    try:
        client.close()
    except (OSError, WebSocketException) as error:
        log.debug("the exec stream was already gone when closing it: %s", error)


def open_exec(
    rest: Rest,
    namespace: str,
    pod: str,
    container: str,
    argv: Sequence[str],
    *,
    stdin: bool,
):  # -> kubernetes.stream.ws_client.WSClient
    """The websocket of an exec, binary-safe; StreamLost when the API cannot be reached."""
    from kubernetes.client.exceptions import ApiException

    try:
        # The query of `stream(CoreV1Api.connect_get_namespaced_pod_exec, ...)`, in its order.
        return rest.websocket(
            core_path("pods", pod, namespace=namespace, subresource="exec"),
            query=[
                ("command", list(argv)),
                ("container", container),
                ("stderr", True),
                ("stdin", stdin),
                ("stdout", True),
                ("tty", False),
            ],
            binary=True,
        )
    except ApiException as error:
        # The client turns *everything* raised while connecting into ApiException(0),
        # Ctrl-C included: give the interrupt back, or it would pass for a lost stream.
        if isinstance(error.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if error.status == 0:
            raise StreamLost(str(error.reason) or "no connection") from None
        raise


def _send_stdin(client, data: bytes) -> None:  # client: kubernetes.stream.ws_client.WSClient
    for start in range(0, len(data), _STDIN_FRAME):
        client.write_stdin(data[start : start + _STDIN_FRAME])
    if client.subprotocol == "v5.channel.k8s.io":
        client.close_channel(0)


_STDERR_KEPT = 64 * 1024


class ExecStream:
    """Run argv in the container and hand out its stdout as it arrives (memory stays flat).

    Iterate it for the stdout chunks; when the iteration ends, `exit_code` and `stderr`
    (its first 64 KiB) are set and `received` counts the stdout bytes that came over the
    stream. Use it as a context manager: leaving early closes the stream, which ends the
    command in the pod. `timeout` bounds the whole command (None: no bound, for `tail -F`).
    Raises StreamLost like `exec_in_pod` when the stream ends without an exit status.
    """

    def __init__(
        self,
        rest: Rest,
        namespace: str,
        pod: str,
        container: str,
        argv: Sequence[str],
        *,
        timeout: float | None,
        stdin: bytes | None = None,
    ) -> None:
        self._args = (rest, namespace, pod, container, list(argv))
        self._timeout = timeout
        self._stdin = stdin
        self._client = None
        self.exit_code: int | None = None
        self.stderr = b""
        self.received = 0

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self):  # -> kubernetes.stream.ws_client.WSClient
        from websocket import WebSocketException

        rest, namespace, pod, container, argv = self._args
        client = open_exec(rest, namespace, pod, container, argv, stdin=self._stdin is not None)
        self._client = client
        if self._stdin is not None:
            try:
                _send_stdin(client, self._stdin)
            except (OSError, ValueError, WebSocketException) as error:
                raise StreamLost(f"exec stream lost while sending input: {error}") from None
        return client

    def __iter__(self) -> Iterator[bytes]:
        from websocket import WebSocketException

        client = self._open()
        argv = self._args[4]
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        stderr = bytearray()
        while True:
            is_open = client.is_open()
            if is_open:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{argv[0]} did not finish within {self._timeout:.0f}s")
                try:
                    client.update(timeout=_CHUNK_WAIT)
                except (OSError, ValueError, WebSocketException) as error:
                    raise StreamLost(f"exec stream lost: {error}") from None
            chunk = client.read_stdout(timeout=0) or b""
            if len(stderr) < _STDERR_KEPT:
                stderr += client.read_stderr(timeout=0) or b""
            else:
                client.read_stderr(timeout=0)
            if chunk:
                self.received += len(chunk)
                yield chunk
            if not is_open:
                break
        self.stderr = bytes(stderr[:_STDERR_KEPT])
        self.exit_code = _exit_code(client)

    def close(self) -> None:
        if self._client is None:
            return
        _close(self._client)
        self._client = None
