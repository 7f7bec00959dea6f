"""The Kubernetes exec websocket protocol, server side, over a PodSandbox process.

Modelled on the real server code (Kubernetes 1.30+):
- `k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`: subprotocol negotiation (the
  first protocol *the client* lists that the server supports; none -> 403 with an empty
  body, as golang.org/x/net/websocket answers a failed handshake), one websocket message
  per write prefixed with the channel byte (base64 protocols: text messages, channel as an
  ASCII digit, payload base64), the v5 stream-close message `[255, channel]`, at most 32 MiB
  per incoming message (x/net/websocket's DefaultMaxPayloadBytes: a bigger message ends the
  connection), messages for unknown or non-readable channels ignored;
- `pkg/kubelet/cri/streaming/remotecommand/websocket.go` and
  `apiserver/pkg/util/proxy/websocket.go`: channels stdin 0, stdout 1, stderr 2, error 3,
  resize 4; ONE empty message on the lowest writable channel (stdout, else stderr, else
  error) once the connection is up; with tty, stderr is dropped (it shares the terminal);
- `remotecommand/exec.go` + `apiserver/pkg/util/proxy/streamtranslator.go`: the result as a
  JSON metav1.Status on channel 3 (v4/v5; pre-v4 protocols send only the error text, and
  nothing on success), then the connection is closed. Exit codes come as
  `reason: NonZeroExitCode`, `details.causes[0] = {reason: ExitCode, message: "<n>"}` with
  containerd's message; a command that cannot start gives an InternalError status.

Output is read from the process in 32 KiB pieces (the io.Copy buffer every hop of the real
path uses), so clients see messages of at most 32 KiB + 1 byte, as from a real server.
Backpressure: a piece is only read after the previous one was handed to the socket (aiohttp
drains its writer); stdin is only read from the socket after the previous message was
written to the process and drained.

With v4 (and older) the client cannot signal stdin EOF: only v5's `[255, 0]` closes the
process's stdin (or the client closing the whole connection). A command that waits for EOF
on stdin therefore never ends over v4: that is the real protocol's limitation.

With tty, no terminal is allocated: stderr joins stdout (as both go to the one terminal) and
resize messages are read and ignored; a real tty would also echo input and turn "\n" into
"\r\n". SPDY (kubectl's fallback when websockets fail) is not served.

If the task running `handle_exec` is cancelled (the simulated API server went away), the
connection is aborted without a close message and the exec'd process group is killed;
processes it detached with setsid live on until their pod ends. If the client goes away,
the process keeps running with its stdin closed and its output discarded (a real exec is not
killed when the client disconnects).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import WSMsgType, hdrs, web
from multidict import MultiMapping

from tests.kubesim.sandbox import PodSandbox, SandboxError, exit_code_of, release

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
STREAM_CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
# protocol -> base64 codec?  "" = no Sec-WebSocket-Protocol header: binary, pre-v4 status.
PROTOCOLS: dict[str, bool] = {
    V5: False,
    V4: False,
    V4_BASE64: True,
    V1: False,
    V1_BASE64: True,
    "": False,
}
_JSON_STATUS = {V5, V4, V4_BASE64}

READ_CHUNK = 32 * 1024
MAX_INCOMING_MESSAGE = 32 << 20
CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ExecResult:
    """How a command ended, as the status message on channel 3 reports it."""

    exit_code: int | None  # None: the command never started
    error: str = ""  # why it never started (runtime error text)


@dataclass(frozen=True)
class ExecOptions:
    """The query of `pods/<name>/exec` as the API server reads it (v1.PodExecOptions)."""

    command: tuple[str, ...]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


_GO_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


class BadExecQuery(ValueError):
    """A query parameter the API server would refuse (400)."""


def parse_exec_query(query: Mapping[str, str] | MultiMapping[str]) -> ExecOptions:
    """Read exec options: repeated `command`; stdout/stderr default to true
    (SetDefaults_PodExecOptions), stdin/tty to false; booleans as Go's strconv.ParseBool."""

    def flag(name: str, default: bool) -> bool:
        value = query.get(name)
        if value is None:
            return default
        if value not in _GO_BOOLS:
            raise BadExecQuery(f'strconv.ParseBool: parsing "{value}": invalid syntax')
        return _GO_BOOLS[value]

    getall = getattr(query, "getall", None)
    command = (
        tuple(getall("command", ())) if getall else tuple(filter(None, [query.get("command")]))
    )
    return ExecOptions(
        command=command,
        container=query.get("container", ""),
        stdin=flag("stdin", False),
        stdout=flag("stdout", True),
        stderr=flag("stderr", True),
        tty=flag("tty", False),
    )


def negotiate(offered_header: str | None) -> str | None:
    """The subprotocol wsstream picks: the first offered one we support; None = refuse."""
    if offered_header is None:
        return ""
    for offered in offered_header.split(","):
        name = offered.strip()
        if name in PROTOCOLS:
            return name
    return None


def status_json(result: ExecResult, argv: Sequence[str]) -> dict:
    """The metav1.Status the real server writes for this result (Go field order)."""
    if result.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    if result.exit_code is not None:
        code = result.exit_code
        # containerd: "error executing command %v, exit code %d"; %v of a []string.
        cause = f"error executing command [{' '.join(argv)}], exit code {code}"
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {cause}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    error = (
        "error executing command in container: failed to exec in container: "
        f'failed to start exec "{secrets.token_hex(32)}": OCI runtime exec failed: '
        f"exec failed: unable to start container process: {result.error}: unknown"
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {error}",
        "reason": "InternalError",
        "details": {"causes": [{"message": error}]},
        "code": 500,
    }


def status_message(result: ExecResult, argv: Sequence[str], protocol: str) -> bytes | None:
    """Channel-3 payload for this protocol; None when nothing is sent (pre-v4 success)."""
    status = status_json(result, argv)
    if protocol in _JSON_STATUS:
        return json.dumps(status, separators=(",", ":")).encode()
    if status["status"] == "Success":
        return None
    return status["message"].encode()


def _bad_request(message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }
    return web.json_response(body, status=400)


class _Channels:
    """Frames channel data for one connection, serialising writers (stdout and stderr)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.base64 = PROTOCOLS[protocol]
        self.gone = asyncio.Event()  # the client cannot be written to anymore
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        if self.gone.is_set():
            return
        async with self._lock:
            try:
                if self.base64:
                    await self.ws.send_str(
                        chr(ord("0") + channel) + base64.b64encode(data).decode()
                    )
                else:
                    await self.ws.send_bytes(bytes([channel]) + data)
            except ConnectionError:
                self.gone.set()

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """(channel, payload) of one incoming message; None for an empty one."""
        # A text message's payload is UTF-8 on the wire (the kubernetes client sends str
        # stdin that way); x/net/websocket hands the server those bytes.
        raw = message.encode("utf-8") if isinstance(message, str) else message
        if not raw:
            return None
        if self.base64:
            try:
                return raw[0] - ord("0"), base64.b64decode(raw[1:], validate=True)
            except binascii.Error:
                return None  # wsstream logs "Unable to write frame" and goes on
        return raw[0], raw[1:]


async def handle_exec(
    request: web.Request,
    sandbox: PodSandbox,
    argv: Sequence[str],
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> web.StreamResponse:
    """Serve one exec request: websocket upgrade, run argv in the pod, stream, report status."""
    if not (stdin or stdout or stderr):
        return _bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if hdrs.UPGRADE not in request.headers:
        return _bad_request("Upgrade request required")
    if request.headers[hdrs.UPGRADE].lower() != "websocket":
        # SPDY/3.1 (kubectl's fallback) is not modelled; it is refused like a bad upgrade.
        return _bad_request(
            f"unable to upgrade: unsupported protocol {request.headers[hdrs.UPGRADE]}"
        )
    protocol = negotiate(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL))
    if protocol is None:
        return web.Response(status=403)
    if tty and stderr:
        stderr = False
    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        max_msg_size=MAX_INCOMING_MESSAGE,
        compress=False,
        timeout=CLOSE_TIMEOUT,
        autoclose=True,
    )
    transport = request.transport
    await ws.prepare(request)
    channels = _Channels(ws, protocol)
    await channels.send(STDOUT if stdout else STDERR if stderr else ERROR, b"")
    try:
        result = await _run(channels, sandbox, argv, stdin=stdin, stdout=stdout, stderr=stderr,
                            tty=tty)  # fmt: skip
    except asyncio.CancelledError:
        if transport is not None:
            transport.abort()
        raise
    payload = status_message(result, argv, protocol)
    if payload is not None:
        await channels.send(ERROR, payload)
    if not ws.closed:
        await ws.close()
    return ws


async def _run(
    channels: _Channels,
    sandbox: PodSandbox,
    argv: Sequence[str],
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> ExecResult:
    try:
        process = await sandbox.exec(argv, stdin=stdin, tty=tty)
    except SandboxError as exc:
        return ExecResult(exit_code=None, error=str(exc))
    pumps = [
        asyncio.create_task(_pump_output(process.stdout, STDOUT if stdout else None, channels)),
        asyncio.create_task(_pump_output(process.stderr, STDERR if stderr else None, channels)),
    ]
    reader = asyncio.create_task(_pump_input(channels, process, stdin=stdin))
    try:
        returncode = await process.wait()
        # The real exec ends when its output streams end: a detached child that kept
        # stdout open holds the stream open, as it does on a node.
        await asyncio.gather(*pumps)
    except BaseException:
        # Cancelled (API outage) or the stream machinery broke: the exec ends here. Nobody
        # waits for the process any more: its transport must be closed now, not when it is
        # garbage-collected (perhaps after the loop closed).
        release(process)
        raise
    finally:
        for task in (*pumps, reader):
            task.cancel()
        outcomes = await asyncio.gather(*pumps, reader, return_exceptions=True)
        _close_stdin(process)
    # A pump that died of something else than its cancellation is a bug: let it show.
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if failures:
        raise failures[0]
    return ExecResult(exit_code=exit_code_of(returncode))


async def _pump_output(
    stream: asyncio.StreamReader | None, channel: int | None, channels: _Channels
) -> None:
    if stream is None:
        return
    while chunk := await stream.read(READ_CHUNK):
        if channel is not None:
            await channels.send(channel, chunk)


async def _pump_input(
    channels: _Channels, process: asyncio.subprocess.Process, *, stdin: bool
) -> None:
    writer = process.stdin if stdin else None
    v5 = channels.protocol == V5
    try:
        async for message in channels.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break  # ERROR (e.g. a message over the size limit): the connection ends
            raw = message.data
            if v5 and _first_byte(raw) == STREAM_CLOSE:
                if len(raw) != 2:
                    break  # wsstream: "Single channel byte should follow stream close signal"
                closed = _first_byte(raw[1:]) - (ord("0") if channels.base64 else 0)
                if closed == STDIN and writer is not None:
                    _close_stdin(process)
                    writer = None
                continue
            frame = channels.decode(raw)
            if frame is None:
                continue
            channel, data = frame
            if channel == STDIN and writer is not None and data:
                writer = await _write_stdin(writer, data)
            # RESIZE: no terminal is modelled; other channels are not readable: ignored.
        # The client closed the connection (or broke the protocol): output has nowhere to go.
        channels.gone.set()
    finally:
        # The process's stdin ends with the connection (or with this exec).
        _close_stdin(process)


async def _write_stdin(writer: asyncio.StreamWriter, data: bytes) -> asyncio.StreamWriter | None:
    """Write and drain; None once the process stopped reading (its stdin is closed)."""
    try:
        writer.write(data)
        await writer.drain()
    except (BrokenPipeError, ConnectionResetError):
        return None
    return writer


def _first_byte(raw: bytes | str) -> int:
    return raw[0] if isinstance(raw, bytes) else ord(raw[0])


def _close_stdin(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
