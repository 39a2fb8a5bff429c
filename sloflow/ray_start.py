"""The one Ray start-up helper: loopback-only locally, join a cluster at SLOFLOW_RAY_ADDRESS, or add a node to a loopback head."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from sloflow.config import Settings
from sloflow.errors import ConfigError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _is_loopback(address: str) -> bool:
    """True for `127.0.0.1:6379`, `localhost:6379` and the like (a `ray://` client address is not)."""
    host = address.rpartition(":")[0] or address
    return host.strip("[]") in _LOOPBACK_HOSTS


def _driver_ip(address: str) -> str:
    """The address this driver gives Ray: loopback for a loopback head, else the local address that routes to the head."""
    if _is_loopback(address):
        return LOOPBACK
    host = (address.removeprefix("ray://").rpartition(":")[0] or address).strip("[]")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # no packet is sent: this only picks the route's local address
        return str(s.getsockname()[0])


def _keep_ray_on_loopback() -> None:
    # Ray reads this at import, so it is set before importing and patched in case the caller
    # imported ray first; child processes inherit the variable. Besides binding every port to
    # loopback, it stops Ray rewriting a loopback address to the machine's routable IP.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def start_ray(settings: Settings, *, num_cpus: int | None = None, dashboard: bool = True) -> None:
    """Start or join Ray once per process; a local Ray (or a joined loopback one) stays on 127.0.0.1."""
    address = settings.ray_address
    if not address or _is_loopback(address):
        _keep_ray_on_loopback()
    import ray

    if ray.is_initialized():
        return
    if address:
        _join(address, _runtime_env(settings))
        return
    # address="local": without it Ray joins whatever cluster /tmp/ray/ray_current_cluster names,
    # which any `ray start` on this machine (even a dead one) leaves behind.
    local = {"address": "local", "dashboard_host": LOOPBACK, "include_dashboard": dashboard, "num_cpus": num_cpus}
    context = ray.init(_node_ip_address=LOOPBACK, log_to_driver=False, runtime_env=_runtime_env(settings), **local)
    log.info("started local Ray on 127.0.0.1 (dashboard %s)", context.dashboard_url or "off")


def _runtime_env(settings: Settings) -> dict:
    """Actors log like the driver (JSON with ids, or text), on every node of the cluster."""
    return {
        "worker_process_setup_hook": "sloflow.logs.setup_from_settings",
        "env_vars": {"SLOFLOW_LOG_FORMAT": settings.log_format, "SLOFLOW_LOG_LEVEL": settings.log_level},
    }


def _join(address: str, runtime_env: dict) -> None:
    """Connect to the cluster at `address` as a driver, with the token if the cluster wants one."""
    import ray
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    # Ray turns token auth on by itself only for address="auto"; for an explicit address it would
    # connect without the token (~/.ray/auth_token, RAY_AUTH_TOKEN...) and be refused. An explicit
    # RAY_AUTH_MODE still wins.
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env, _node_ip_address=_driver_ip(address))
    except ConnectionError as exc:
        raise ConnectionError(
            f"cannot join the Ray cluster at SLOFLOW_RAY_ADDRESS={address}: {exc}. Is a head running there "
            "(`ray start --head`), and is this process given its auth token (~/.ray/auth_token or RAY_AUTH_TOKEN)?"
        ) from exc
    log.info("joined Ray cluster at %s", address)


def start_node(address: str, *, num_cpus: int | None = None, num_gpus: int | None = None, resources: dict[str, float] | None = None) -> Any:
    """Add a Ray node on this machine to the loopback head at `address`, every port on 127.0.0.1; returns Ray's `Node`.

    What `ray start --address` does, which it refuses here: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    (the setting that keeps Ray on loopback) it aborts ("Multi-node Ray clusters are not supported"),
    and with =1 it rewrites 127.0.0.1 to the machine's routable address, where a loopback head is
    not reachable. This starts the same `Node` in-process, as `ray.cluster_utils.Cluster` does for
    Ray's multi-node tests; its processes stop when this process exits.
    """
    if not _is_loopback(address):
        raise ConfigError(
            f"`sloflow node` joins a Ray head on this machine (127.0.0.1:PORT), not {address}; "
            f"on another machine run `ray start --address={address}` there"
        )
    port = address.rpartition(":")[2]
    if not port.isdigit():
        raise ConfigError(f"give the Ray head's port, as in 127.0.0.1:6379, not {address}")
    try:  # Ray would retry a head that is not there for ever
        socket.create_connection((LOOPBACK, int(port)), timeout=5).close()
    except OSError:
        raise ConfigError(
            f"no Ray head listens at {LOOPBACK}:{port}; start one with "
            f"`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1 --port={port}`"
        ) from None
    _keep_ray_on_loopback()
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray._private.node import Node
    from ray._private.parameter import RayParams
    from ray._private.services import wait_for_node

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)  # the head's token, as in _join
    params = RayParams(
        gcs_address=f"{LOOPBACK}:{port}",
        node_ip_address=LOOPBACK,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        resources=resources or {},
        # Every port picked free: the head on this machine already holds Ray's default ones.
        node_manager_port=0,
        object_manager_port=0,
        dashboard_agent_listen_port=None,
        min_worker_port=0,
        max_worker_port=0,
        include_log_monitor=False,  # the head's log monitor already follows the session's shared log folder
    )
    try:
        node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
        wait_for_node(node.gcs_address, node.plasma_store_socket_name, timeout=60)  # registered: tasks can land on it
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        raise ConfigError(f"cannot add a node to the Ray head at {address}: {exc}. Is `ray start --head` running there?") from exc
    return node
