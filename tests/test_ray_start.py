"""The Ray start-up helper keeps every Ray port on loopback."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_local_ray_listens_on_loopback_only() -> None:
    # In a subprocess, so this test owns its Ray instance whatever other tests do.
    code = textwrap.dedent(
        """
        import json, os, psutil, ray
        from sloflow.config import Settings
        from sloflow.ray_start import start_ray
        start_ray(Settings(ray_address=None), num_cpus=1, dashboard=True)
        session = ray._private.worker._global_node.get_session_dir_path()
        mine = [p for p in psutil.process_iter(["cmdline"]) if session in " ".join(p.info["cmdline"] or [])]
        ray_pids = {os.getpid()} | {p.pid for p in mine}
        ray_pids |= {c.pid for p in mine for c in p.children(recursive=True)}
        addrs = sorted({c.laddr.ip for c in psutil.net_connections("inet")
                        if c.status == psutil.CONN_LISTEN and c.pid in ray_pids})
        ray.shutdown()
        print(json.dumps(addrs))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    addrs = json.loads(out.stdout.strip().splitlines()[-1])
    assert addrs, "Ray listened on nothing?"
    assert set(addrs) <= {"127.0.0.1", "::ffff:127.0.0.1"}, addrs
