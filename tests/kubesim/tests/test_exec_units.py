"""Pure parts of the exec protocol: subprotocol choice, query parsing, status payloads."""

from __future__ import annotations

import json

import pytest
from multidict import MultiDict

from tests.kubesim.execstream import (
    BadExecQuery,
    ExecResult,
    negotiate,
    parse_exec_query,
    status_message,
)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("v5.channel.k8s.io,v4.channel.k8s.io", "v5.channel.k8s.io"),  # kubernetes client
        ("v4.channel.k8s.io, v5.channel.k8s.io", "v4.channel.k8s.io"),  # the client's order
        ("v6.channel.k8s.io,base64.channel.k8s.io", "base64.channel.k8s.io"),
        ("SPDY/3.1+portforward.k8s.io", None),
        (None, ""),  # no header: the pre-v4 binary protocol
    ],
)
def test_the_first_offered_supported_subprotocol_wins(offered, chosen) -> None:
    assert negotiate(offered) == chosen


def test_query_defaults_and_go_booleans() -> None:
    options = parse_exec_query(MultiDict([("command", "sh"), ("command", "-c"), ("command", "")]))
    assert options.command == ("sh", "-c", "")
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (
        False,
        True,  # SetDefaults_PodExecOptions
        True,
        False,
    )
    options = parse_exec_query(MultiDict(stdin="T", stdout="0", stderr="FALSE", tty="True"))
    assert (options.stdin, options.stdout, options.stderr, options.tty) == (
        True,
        False,
        False,
        True,
    )
    with pytest.raises(BadExecQuery, match=r'parsing "yes": invalid syntax'):
        parse_exec_query(MultiDict(stdin="yes"))


def test_status_payloads_per_protocol() -> None:
    argv = ["sh", "-c", "exit 2"]
    failed = ExecResult(exit_code=2)
    v5 = json.loads(status_message(failed, argv, "v5.channel.k8s.io") or b"")
    assert v5["message"] == (
        "command terminated with non-zero exit code: "
        "error executing command [sh -c exit 2], exit code 2"
    )
    assert status_message(ExecResult(exit_code=0), argv, "channel.k8s.io") is None
    assert status_message(failed, argv, "channel.k8s.io") == v5["message"].encode()
    ok = status_message(ExecResult(exit_code=0), argv, "v4.base64.channel.k8s.io")
    assert ok == b'{"metadata":{},"status":"Success"}'
