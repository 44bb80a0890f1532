"""A throwaway PostgreSQL server from Debian's packages, on 127.0.0.1 with its own data folder."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bin_dir = _bin_dir()
        # Not under pytest's tmp folder: that is private to root, and the server runs as postgres.
        self.data_dir = Path(tempfile.mkdtemp(prefix="i2v-postgres-"))
        self.port = _free_port()
        self.database = "i2v"

    @property
    def available(self) -> bool:
        return self.bin_dir is not None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data_dir, "postgres", "postgres")
        pgdata = self.data_dir / "pgdata"
        self._run("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(pgdata),
            "-o",
            options,
            "-l",
            str(self.data_dir / "log"),
            "-w",
            "start",
        )
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database
        )

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if pgdata.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.data_dir, ignore_errors=True)
