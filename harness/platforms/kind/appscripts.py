"""The Python scripts the kind platform runs inside an app container (`kubectl exec ... python -c`): the
app's fault knobs set and read, and the app-only kill. Each is self-contained (stdlib only): the sample
image has Python, not the harness."""

from __future__ import annotations

# PUT /admin/knobs from inside the app container: the API server's pod proxy would reach the pod through
# its sidecar, which STRICT mTLS closes to plaintext callers; 127.0.0.1 inside the pod is not captured.
KNOBS_SCRIPT = (
    "import sys, urllib.error, urllib.request\n"
    "request = urllib.request.Request('http://127.0.0.1:%d/admin/knobs', data=sys.argv[1].encode(), method='PUT', "
    "headers={'content-type': 'application/json'})\n"
    "try:\n    response = urllib.request.urlopen(request, timeout=5)\n"
    "except urllib.error.HTTPError as error:\n    response = error\n"
    "print(response.status)\nprint(response.read().decode())\n"
)
# SIGKILL the app's process, as the local platform does and as an OOM kill would (SIGTERM would let uvicorn
# drain for up to 5 s). On kind every mesh pod shares one PID namespace (render.kill_ready), so the app is
# not PID 1, which the kernel shields from SIGKILL sent inside its namespace. The script finds the process
# by its argv (APP_ARGV, the Deployments' command) and never kills itself; exit 3 when none is found.
APP_ARGV = ("-m", "harness.services")
APP_KILL_SCRIPT = (
    "import os, signal, sys\n"
    "wanted, me, killed = sys.argv[1:], os.getpid(), []\n"
    "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != me]:\n"
    "    try:\n"
    "        argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[:-1]\n"
    "    except OSError:\n"
    "        continue\n"
    "    if [a.decode(errors='replace') for a in argv[1:1 + len(wanted)]] == wanted:\n"
    "        os.kill(pid, signal.SIGKILL)\n"
    "        killed.append(str(pid))\n"
    "print(' '.join(killed))\n"
    "sys.exit(0 if killed else 3)\n"
)
KNOBS_GET_SCRIPT = ("import urllib.request\n"
                    "print(urllib.request.urlopen('http://127.0.0.1:%d/admin/knobs', timeout=5).read().decode())\n")
