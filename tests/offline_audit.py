"""Running a script in a child process with the network cut, recording every attempt to use it.

``AUDIT_PRELUDE`` starts the script: an audit hook appends each socket connect (other than
AF_UNIX) and DNS lookup to ``attempts``, which the script prints in its last JSON line.
``run_offline`` runs it under ``unshare -n`` where the machine allows, without the offline
switches in the environment (the package must set them itself), and returns that JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from ingest.offline import OFFLINE_SWITCHES

AUDIT_PRELUDE = r"""
import json, socket, sys
attempts = []
def _audit(event, args):
    if event == "socket.connect" and args[0].family != socket.AF_UNIX:
        attempts.append(f"connect {args[1]!r}")
    elif event == "socket.getaddrinfo":
        attempts.append(f"dns {args[0]!r}")
sys.addaudithook(_audit)
"""


def run_offline(script: str, *args: str, timeout: int = 600) -> dict[str, Any]:
    """Run ``AUDIT_PRELUDE + script`` with ``args``; its last stdout line parsed as JSON."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_SWITCHES}  # the package sets them
    cmd = [sys.executable, "-c", AUDIT_PRELUDE + script, *args]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
