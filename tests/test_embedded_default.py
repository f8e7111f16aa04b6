"""The one test on the embedded default that `make run` uses: SQLite and a filesystem
broker, nothing else installed. It runs the real `make run` steps in a subprocess."""

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["ECOLINK_VAR_DIR"] = str(tmp_path / "var")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def manage(env, *args) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_make_run_serves_the_site_and_the_demo_login_works(embedded_env, tmp_path):
    manage(embedded_env, "migrate", "--noinput")
    output = manage(embedded_env, "bootstrap_demo")
    match = re.search(r"^Login: (\S+) / (\S+)$", output, re.MULTILINE)
    assert match, output
    username, password = match.groups()
    assert (tmp_path / "var" / "db.sqlite3").exists()

    port = free_port()
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "scripts/run.py", "--port", str(port)],
        cwd=ROOT,
        env=embedded_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        deadline = time.monotonic() + 60
        while True:
            try:
                login_page = opener.open(f"{base}/accounts/login/").read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.5)
        assert "Log in" in login_page
        # `/` asks for a login first.
        assert opener.open(f"{base}/").geturl().startswith(f"{base}/accounts/login/")

        csrf = next(c.value for c in jar if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": csrf}
        ).encode()
        home = opener.open(f"{base}/accounts/login/", data=form)
        body = home.read().decode()
        assert home.geturl() == f"{base}/"
        assert "Welcome, demo" in body
        assert 'data-testid="balance-badge"' in body

        # The worker beside the site consumes tasks from the filesystem broker.
        queue = tmp_path / "var" / "broker" / "queue"
        ping = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
                "'ecolink.settings'); django.setup(); from worker.celery import ping; "
                "ping.delay('embedded')",
            ],
            cwd=ROOT,
            env=embedded_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ping.returncode == 0, ping.stderr
        deadline = time.monotonic() + 60
        while list(queue.glob("*")):
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        assert "ecolink.ping" in (tmp_path / "run.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
