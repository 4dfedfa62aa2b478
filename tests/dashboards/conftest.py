"""Fixtures for the dashboards tests: the tiny data folder, a server process, a throwaway PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dashboard_data import XSS_TITLE, ServerProcess, build_data_dir, free_port


@pytest.fixture(scope="session")
def data_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("dashdata")
    ids = build_data_dir(root)
    return root, ids


@pytest.fixture
def data_dir(data_template, tmp_path):
    """A private copy of the tiny data folder (its database starts empty)."""
    root = tmp_path / "data"
    shutil.copytree(data_template[0], root)
    return root


@pytest.fixture
def xss_title():
    return XSS_TITLE


@pytest.fixture
def ids(data_template):
    return data_template[1]


@pytest.fixture
def server(data_dir):
    process = ServerProcess(data_dir).start()
    yield process
    process.stop()


# -- a throwaway PostgreSQL ------------------------------------------------------------------
def _postgres_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL cluster on a free port (initdb/pg_ctl as the postgres user); yields a URL maker."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql)")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a throwaway PostgreSQL needs root (runuser -u postgres)")
    import tempfile

    # pytest's own temporary folders are private to root; the postgres user needs its own.
    root = Path(tempfile.mkdtemp(prefix="emoforge-pg-"))
    os.chmod(root, 0o755)
    cluster, sockets = root / "cluster", root / "sock"
    sockets.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(sockets, "postgres")
    port = free_port()
    run = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run + [str(binaries / "initdb"), "-D", str(cluster), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {sockets} -c listen_addresses='' -c fsync=off -c max_connections=60"
    subprocess.run(run + [str(binaries / "pg_ctl"), "-D", str(cluster), "-o", options, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)
    counter = iter(range(10_000))

    def new_database() -> str:
        import psycopg

        name = f"dash_{next(counter)}"
        with psycopg.connect(f"postgresql://postgres@/postgres?host={sockets}&port={port}", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@/{name}?host={sockets}&port={port}"

    yield new_database
    subprocess.run(run + [str(binaries / "pg_ctl"), "-D", str(cluster), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, data_dir):
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'dashboard.sqlite'}"
    return request.getfixturevalue("postgres_server")()
