"""Run a command with real PostgreSQL and Redis available, for `make test`.

DATABASE_URL / REDIS_URL already set: used as they are. Otherwise a server already
listening on the default local port is used (trust auth, as on a developer machine).
Otherwise a throwaway server is started in a temporary folder and removed afterwards,
installing the Debian package first when the binary is missing and we are root.

    python scripts/with_services.py -- pytest -q
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_PORT, REDIS_PORT = 5432, 6379


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start on port {port}")
        time.sleep(0.2)


def apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"{package} is not installed and we are not root: install it first")
    log(f"installing {package} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env)


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def start_postgres(workdir: str) -> tuple[str, list[str]]:
    if not pg_bin("initdb"):
        apt_install("postgresql")
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    data = os.path.join(workdir, "pg")
    os.makedirs(data)
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*run_as, initdb, "-D", data, "-U", "postgres", "-A", "trust"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            pg_ctl,
            "-D",
            data,
            "-o",
            options,
            "-l",
            os.path.join(workdir, "pg.log"),
            "-w",
            "start",
        ],
        check=True,
    )
    log(f"started a throwaway PostgreSQL on port {port}")
    return f"postgresql://postgres@127.0.0.1:{port}/ecolink", [
        *run_as,
        pg_ctl,
        "-D",
        data,
        "-m",
        "immediate",
        "stop",
    ]


def start_redis(workdir: str) -> tuple[str, subprocess.Popen]:
    if not shutil.which("redis-server"):
        apt_install("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for(port, "Redis")
    log(f"started a throwaway Redis on port {port}")
    return f"redis://127.0.0.1:{port}/0", proc


def main(argv: list[str]) -> int:
    if "--" not in argv:
        raise SystemExit(__doc__)
    command = argv[argv.index("--") + 1 :]
    env = dict(os.environ)
    workdir = tempfile.mkdtemp(prefix="ecolink-services-")
    os.chmod(workdir, 0o755)  # noqa: S103 - the postgres user must reach its data folder
    pg_stop, redis_proc = None, None
    try:
        if not env.get("DATABASE_URL"):
            if listening(PG_PORT):
                env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{PG_PORT}/ecolink"
                log("using the PostgreSQL listening on 127.0.0.1:5432")
            else:
                env["DATABASE_URL"], pg_stop = start_postgres(workdir)
        if not env.get("REDIS_URL"):
            if listening(REDIS_PORT):
                # A database number of its own, so tests never flush someone else's keys.
                env["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/9"
                log("using the Redis listening on 127.0.0.1:6379 (db 9)")
            else:
                env["REDIS_URL"], redis_proc = start_redis(workdir)
        proc = subprocess.Popen(command, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            return proc.wait()
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        if pg_stop is not None:
            subprocess.run(pg_stop, check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
