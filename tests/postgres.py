"""A throwaway PostgreSQL server for the tests that need one (shared store, several managers on one database)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for this session, from Debian's ``postgresql`` package (.ci/run installs it).

    PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user. Its directory comes from
    ``tempfile.mkdtemp`` rather than ``tmp_path``: pytest's base directory is mode 0700 and owned by root, so the
    ``postgres`` user could not reach anything under it."""
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not initdbs or not Path(initdbs[-1]).with_name("pg_ctl").exists():
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb, pg_ctl); "
                    "install Debian's `postgresql` package to run the PostgreSQL store tests")
    bindir = Path(initdbs[-1]).parent
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="llm-manager-pg-"))
    if os.geteuid() == 0:
        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the PostgreSQL server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and `runuser` is missing, needed to start PostgreSQL as `postgres`")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    run = [*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
           "--no-sync"]
    subprocess.run(run, check=True, capture_output=True)
    opts = f"-k {base} -p {port} -h 127.0.0.1 -F"
    start = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o",
             opts, "start"]
    subprocess.run(start, check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def create_database(postgres_url: str, prefix: str = "t") -> str:
    """A new empty database on the test server; its URL (the server is thrown away after the run)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop a database ``create_database`` made (connections still open are closed)."""
    import psycopg

    server, name = url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    url = create_database(postgres_url)
    yield url
    drop_database(url)
