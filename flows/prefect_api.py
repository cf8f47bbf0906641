"""One Prefect API per command, shared with every process it starts.

Without a Prefect server (`PREFECT_API_URL` unset) Prefect starts an ephemeral API server in each
process that needs one: the command, and again in every pool worker. Each costs seconds (importing
Prefect's server alone takes ~9 s on a loaded 2-core machine) and leaves one more process to clean
up. `start()` instead starts one server for the command and exports its URL, so the pool workers,
Ray's workers and nested commands all use it.

The listening socket is bound here and handed to uvicorn (`--fd`): the URL is valid at once, a
request made while the server still boots waits in the socket's backlog instead of failing, and the
command goes on importing its flows meanwhile. Commands call `start()` after their arguments are
checked (a bad argument costs no server). With `PREFECT_API_URL` set, `start()` checks that a server
answers there and says which setting to fix if not, in about a second instead of a long traceback.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from doodleflow.flows.processes import kill_with_parent
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import home

PROBE_TIMEOUT_S = 3.0
_server: subprocess.Popen | None = None
_url: str | None = None


def start() -> str:
    """The API URL this command's flows use: $PREFECT_API_URL once it answers, else a server started
    here (once per process) whose URL is exported to every child."""
    global _url
    url = os.environ.get("PREFECT_API_URL")
    if url:
        if url != _url:  # not the one this process started: a server someone runs, which must answer
            check(url)
        return url
    url = _url = _start_server()
    os.environ["PREFECT_API_URL"] = url
    # Its UI is off (as in Prefect's own ephemeral mode): no "View at <dead link>" line per flow run.
    logging.getLogger("prefect.flow_runs").addFilter(lambda r: not str(r.msg).startswith("View at "))
    if "prefect.context" in sys.modules:  # Prefect read its settings already: make it see the URL
        sys.modules["prefect.context"].refresh_global_settings_context()
    return url


def check(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """ConfigError naming PREFECT_API_URL unless a Prefect API answers its health check at `url`."""
    fix = "start the server (`prefect server start`) or unset PREFECT_API_URL to use one started for the command"
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as r:
            ok = r.status == 200 and json.loads(r.read() or b"null") is True
    except urllib.error.HTTPError as e:
        raise ConfigError(
            f"PREFECT_API_URL={url}: answered HTTP {e.code}, not a Prefect API; {fix}"
        ) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ConfigError(f"PREFECT_API_URL={url}: no Prefect API answers ({reason}); {fix}") from None
    if not ok:
        raise ConfigError(f"PREFECT_API_URL={url}: the health check failed; {fix}")


def _start_server() -> str:
    global _server
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    logs = os.path.join(home(), "logs")
    os.makedirs(logs, exist_ok=True)
    # The same server Prefect's own ephemeral mode runs (prefect.server.api.server.SubprocessASGIServer).
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    app_dir = os.path.dirname(os.path.dirname(importlib.util.find_spec("prefect").origin))
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory", "prefect.server.api.server:create_app",
           "--fd", str(sock.fileno()), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
    with open(os.path.join(logs, "prefect-server.log"), "ab") as log:
        _server = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            pass_fds=(sock.fileno(),), preexec_fn=kill_with_parent,
        )  # fmt: skip
    sock.close()  # uvicorn holds it now; connections queue until it serves
    atexit.register(stop)
    return f"http://127.0.0.1:{port}/api"


def stop() -> None:
    """Stop the server this process started (at exit; SIGKILL of the command: the parent-death signal)."""
    global _server
    if _server is None:
        return
    _server.terminate()
    try:
        _server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _server.kill()
    _server = None
