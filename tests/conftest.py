"""Fixtures shared by the whole suite: real PostgreSQL and Redis, a real Celery worker,
the tiny local model."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from ecolink.catalog.tiny_model import ensure_tiny_model

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # The suite runs on real services; only the embedded-default smoke test runs SQLite,
    # in its own subprocess.
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit("Tests need PostgreSQL: run `make test` (or set DATABASE_URL).", returncode=2)
    if not settings.REDIS_URL:
        pytest.exit("Tests need Redis: run `make test` (or set REDIS_URL).", returncode=2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny local base model, built once per test session (no download)."""
    return ensure_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def catalog(db, tiny_model_dir):
    """The seeded catalog with the tiny local model on the allow-list."""
    from ecolink.catalog.services import catalog_seed, tiny_model_register

    catalog_seed()
    tiny_model_register(path=tiny_model_dir)


@pytest.fixture
def org(catalog):
    """An organization with $100 of balance (datasets and billing tests use an unfunded one)."""
    from tests.factories import OrganizationFactory, fund

    org = OrganizationFactory()
    fund(org, 100_000_000)
    return org


@pytest.fixture
def user(org):
    """A member of the test's `org` (each test package defines its own `org`)."""
    from tests.factories import member_of

    return member_of(org)


@pytest.fixture
def logged_in(client, user):
    from tests.factories import PASSWORD

    client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def database_url_for_subprocesses() -> str:
    """The URL of the database pytest-django created, for subprocesses (workers, servers)."""
    from django.db import connection

    db = connection.settings_dict
    return (
        f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": settings.REDIS_URL,
    }
    env.update(extra)
    return env


def start_celery_worker(env: dict[str, str], log, *args: str) -> subprocess.Popen:
    """A Celery worker process of this project, in a session of its own (so a test can
    signal its whole process group), logging to `log`."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Ask a server a test started to stop; kill it if it doesn't in time."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def celery_worker_queue(transactional_db, redis_client, tmp_path):
    """A real Celery worker process on Redis and the test database, on a queue of its own.

    Yields the queue name; send tasks with `task.apply_async(..., queue=queue)`.
    """
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(CELERY_TASK_DEFAULT_QUEUE=queue, ECOLINK_VAR_DIR=str(tmp_path))
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    proc = start_celery_worker(env, log, "--pool=solo", "-Q", queue)
    deadline = time.monotonic() + 60
    while "ready" not in (tmp_path / "worker.log").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("worker did not start:\n" + (tmp_path / "worker.log").read_text())
        time.sleep(0.2)
    yield queue
    stop_process(proc)
    log.close()


# --- Browser tests: one Playwright instance for the whole session, whichever package
# its tests live in (two sync instances in one process refuse to run).
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, and this machine's
# closed network refuses it, many times over.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# between browser steps are ordinary blocking calls, which Django would otherwise refuse.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # This machine is small and busy during the suite: give assertions the same 15 s as
    # page actions instead of Playwright's 5 s.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
