"""How a model process is launched: its argv (``${PORT}``, ``${INSTANCE}``, ``${MODEL}``, ``${PYTHON}``), and who
holds a port it needs."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from ..config.parse import ModelConfig, Profile
from ..errors import StartFailed

# setpriv sets PR_SET_PDEATHSIG and execs, which lets CPython spawn with vfork; a preexec_fn would
# force a full fork of the manager (tens of ms, on the event loop). preexec_fn is the fallback.
SETPRIV = shutil.which("setpriv")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def port_owner(port: int) -> str:
    """Best effort: which process listens on ``port`` (for the error message)."""
    try:
        import psutil

        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == "LISTEN" and c.pid:
                return f"pid {c.pid} ({psutil.Process(c.pid).name()})"
    except Exception:
        pass
    return "another process"


def launch_argv(model: ModelConfig, profile: Profile, base_dir: Path, instance: int = 0) -> list[str]:
    """The argv that starts this profile as instance ``instance``; ``${PORT}`` (the instance's), ``${INSTANCE}``,
    ``${MODEL}`` and ``${PYTHON}`` are substituted."""
    if profile.command:
        subst = {"${PORT}": str(model.instance_port(instance)), "${INSTANCE}": str(instance), "${MODEL}": model.name,
                 "${PYTHON}": sys.executable}
        argv = []
        for arg in profile.command:
            for k, v in subst.items():
                arg = arg.replace(k, v)
            argv.append(arg)
        return argv
    assert profile.bat_path is not None
    script = Path(profile.bat_path.replace("\\", "/"))
    if not script.is_absolute():
        script = base_dir / script
    if script.suffix.lower() in (".bat", ".cmd") and os.name == "posix":
        raise StartFailed(f"model {model.name}: profile {profile.name}: bat_path {profile.bat_path} is a Windows "
                          "batch file; on Linux/macOS point bat_path at an executable or .sh script, or use command")
    if not script.exists():
        raise StartFailed(f"model {model.name}: profile {profile.name}: launch script {script} does not exist")
    if script.suffix == ".sh":
        return [shutil.which("bash") or "/bin/sh", str(script)]
    if not os.access(script, os.X_OK):
        raise StartFailed(f"model {model.name}: launch script {script} is not executable (chmod +x it)")
    return [str(script)]
