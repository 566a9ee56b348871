"""A throwaway PostgreSQL server for the storage tests."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from ortserve_testing.processes import free_port


class TemporaryPostgres:
    """A throwaway PostgreSQL cluster on a free loopback port, from the machine's own server binaries.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user (runuser), in a folder
    of its own under /tmp (a pytest tmp_path sits in folders that user cannot enter). `url` is None, with `reason`
    saying why, when no server can be started here.
    """

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="ortserve-pg-"))
        self.port = free_port()
        self.url: str | None = None
        self.reason = ""
        self._bin = _postgres_bin()
        self._as_user: list[str] = []

    def start(self) -> Self:
        if self._bin is None:
            self.reason = "no PostgreSQL server binaries (initdb, pg_ctl) on this machine"
            return self
        if os.geteuid() == 0:
            if shutil.which("runuser") is None or not _user_exists("postgres"):
                self.reason = "running as root without a postgres user to run the server as"
                return self
            self._as_user = ["runuser", "-u", "postgres", "--"]
        if self._as_user:
            shutil.chown(self.workdir, "postgres")
        data = self.workdir / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.workdir / "server.log"), "-w", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return self

    def stop(self) -> None:
        if self.url is not None:
            self._run("pg_ctl", "-D", str(self.workdir / "data"), "-m", "immediate", "-w", "stop")
            self.url = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        assert self._bin is not None
        done = subprocess.run([*self._as_user, str(self._bin / tool), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}{done.stderr}")


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))  # Debian keeps them off the PATH
    return versions[-1].parent if versions else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
