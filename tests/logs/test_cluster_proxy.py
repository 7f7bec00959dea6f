"""Pure parts of reading through the kubelet /logs proxy: ranges and paths."""

from __future__ import annotations

import pytest

from kubectl_audit.logs.proxy import ContentRange, ProxyRefused, _relative, log_files_for


def test_content_range_as_go_net_http_writes_it() -> None:
    assert ContentRange.parse("bytes 100-199/1000") == ContentRange(100, 199, 1000)
    assert ContentRange.parse("bytes */1000") == ContentRange(None, None, 1000)  # a 416
    assert ContentRange.parse(None) is None
    assert ContentRange.parse("items 1-2/3") is None


def test_paths_relative_to_var_log() -> None:
    assert _relative("/var/log/kubernetes/audit/audit.log") == "kubernetes/audit/audit.log"
    assert _relative("/var/log//kubernetes/./audit/") == "kubernetes/audit/"  # a directory
    assert _relative("/var/log") == ""
    with pytest.raises(ProxyRefused, match="not under /var/log"):
        _relative("/var/log/../../etc/shadow")
    with pytest.raises(ProxyRefused):
        _relative("/var/logs/audit.log")


def test_log_files_for_a_host_path() -> None:
    files = log_files_for("/var/log/kubernetes/audit/audit.log")
    assert (files.directory, files.current_name) == ("/var/log/kubernetes/audit", "audit.log")
