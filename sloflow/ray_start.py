"""The one Ray start-up helper: loopback-only locally, or join a cluster at SLOFLOW_RAY_ADDRESS."""

from __future__ import annotations

import logging
import os

from sloflow.config import Settings

log = logging.getLogger(__name__)


def start_ray(settings: Settings, *, num_cpus: int | None = None, dashboard: bool = True) -> None:
    """Start or join Ray once per process; a local Ray binds every port to 127.0.0.1."""
    # Together with _node_ip_address below, this makes every Ray port (GCS, raylet, agents,
    # dashboard) listen on loopback only. Ray reads it at import, so it is set before importing
    # and patched in case the caller imported ray first; child processes inherit the variable.
    if not settings.ray_address:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
        log.info("joined Ray cluster at %s", settings.ray_address)
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    loopback = "127.0.0.1"
    context = ray.init(_node_ip_address=loopback, dashboard_host=loopback, include_dashboard=dashboard, num_cpus=num_cpus, log_to_driver=False)
    log.info("started local Ray on 127.0.0.1 (dashboard %s)", context.dashboard_url or "off")
