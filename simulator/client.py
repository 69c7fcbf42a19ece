"""The control API's client: what `govwatch simulate fault|recover|sites` send to a running
simulator (simulator.control serves it). Standard library only, so the command line loads
it without the servers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

DEFAULT_CONTROL_HOST = "127.0.0.1"
DEFAULT_CONTROL_PORT = 9480
DEFAULT_CONTROL_URL = f"http://{DEFAULT_CONTROL_HOST}:{DEFAULT_CONTROL_PORT}"
_CLIENT_TIMEOUT_S = 10.0


class ControlError(Exception):
    """The control API refused a request, or could not be reached."""


def call_control(base_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (no body) or POST (JSON body) to the control API; the decoded JSON answer."""
    url = base_url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_CLIENT_TIMEOUT_S) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (json.JSONDecodeError, AttributeError):
            message = exc.reason
        raise ControlError(str(message)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControlError(
            f"cannot reach the simulator's control API at {base_url}: {reason} "
            "(is `govwatch simulate` running? see --control)"
        ) from None
