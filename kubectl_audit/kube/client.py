"""Build a `kubernetes` ApiClient the way kubectl resolves its configuration."""

from __future__ import annotations

import os
from typing import Any

from kubectl_audit.cli.options import KubeOptions
from kubectl_audit.errors import ClusterError


def connect(options: KubeOptions):  # -> kubernetes.client.ApiClient
    """An ApiClient for --kubeconfig/--context, else $KUBECONFIG, else ~/.kube/config.

    Falls back to the in-cluster service account when no kubeconfig exists at all.
    """
    try:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ClusterError(
            "the Kubernetes Python client is not installed in this python3",
            hint="cluster commands need it: python3 -m pip install 'kubernetes>=37' "
            "(policy commands and `logs --file` work without it)",
        ) from None

    path = options.kubeconfig
    if path is not None and not os.path.exists(path):
        raise ClusterError(
            f"kubeconfig {path} not found", hint="check the path given to --kubeconfig"
        )
    if path is None and not _default_kubeconfig_exists():
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
            from kubernetes.client import ApiClient

            api_client = ApiClient()
            if options.request_timeout:
                _apply_request_timeout(api_client, options.request_timeout)
            return api_client
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(
            f"no kubeconfig found at {where}",
            hint="point --kubeconfig or KUBECONFIG at your cluster's kubeconfig",
        )
    try:
        api_client = config.new_client_from_config(config_file=path, context=options.context)
    except ConfigException as error:
        where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(
            f"cannot load kubeconfig {where}: {error}",
            hint="point --kubeconfig or KUBECONFIG at a valid kubeconfig, "
            "or pick one of its contexts with --context",
        ) from None
    except FileNotFoundError:
        raise ClusterError(
            f"kubeconfig {path} not found", hint="check the path given to --kubeconfig"
        ) from None
    if options.request_timeout:
        _apply_request_timeout(api_client, options.request_timeout)
    return api_client


def _apply_request_timeout(api_client: Any, seconds: float) -> None:
    """--request-timeout for every REST request that does not set its own.

    The client passes an explicit `timeout=None` to urllib3 when a call gives no
    `_request_timeout`, which overrides any pool default, so the default goes in here."""
    send = api_client.rest_client.request

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return send(*args, _request_timeout=_request_timeout or seconds, **kwargs)

    api_client.rest_client.request = request


def _default_kubeconfig_exists() -> bool:
    env = os.environ.get("KUBECONFIG")
    if env:
        return any(os.path.exists(p) for p in env.split(os.pathsep) if p)
    return os.path.exists(os.path.expanduser("~/.kube/config"))
