"""A throwaway Postgres for tests (`postgres_server`) and a fresh database on it
(`postgres_database`)."""

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlstack.testing import free_port


def _postgres_bindir() -> Path | None:
    """Debian and Ubuntu keep `initdb` and `pg_ctl` off PATH, in /usr/lib/postgresql/<v>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway Postgres on 127.0.0.1: `initdb` into a fresh folder, `pg_ctl start` on a free
    port with its socket in that folder, `pg_ctl stop -m fast` at the end. Yields
    `postgresql://mlstack:<password>@127.0.0.1:<port>/postgres`: password authentication, so the
    URL carries a secret as a production one does. Skips the calling test when the binaries are
    missing (`.ci/run` installs them).

    initdb refuses to run as root, so as root the server runs as the `postgres` system user (the
    Debian package makes it), else as `nobody`. fsync is off: tests kill clients, not the server."""
    bindir = _postgres_bindir()
    if bindir is None:
        import pytest

        pytest.skip("Postgres is not installed: sudo apt-get install -y postgresql")
    folder = Path(tempfile.mkdtemp(prefix="pg-"))  # short: the socket path has a 107-byte limit
    password = secrets.token_urlsafe(16)
    (folder / "pw").write_text(password)
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        run_as = ["runuser", "-u", user, "--"]
        folder.chmod(0o755)  # mkdtemp's 0700 would keep the server's user out
        for path in (folder, folder / "pw"):
            shutil.chown(path, user)
    data, port = folder / "data", free_port()

    def pg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)

    try:
        init = pg(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "mlstack",
            "--auth=scram-sha-256",
            f"--pwfile={folder / 'pw'}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr}")
        start = pg(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -F",
            "start",
        )
        if start.returncode != 0:
            log = (folder / "log").read_text() if (folder / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stderr}{log}")
        try:
            yield f"postgresql://mlstack:{password}@127.0.0.1:{port}/postgres"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def postgres_database(server_url: str) -> str:
    """A new, empty database on the server of `postgres_server()`; returns its URL."""
    import psycopg

    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")  # a fresh name, not user input
    return server_url.rsplit("/", 1)[0] + "/" + name
