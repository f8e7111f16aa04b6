"""`make bench-web`: 50 clients poll a training job's status fragment for 30 s.

The app runs under gunicorn on PostgreSQL (a throwaway database), with a Celery worker
and beat on Redis, while a real tiny job trains on the local pod backend and reports its
events to that same gunicorn. 50 concurrent clients on loopback each log in and poll
`/fine-tune/<id>/status` once a second, three times the job page's htmx rate (a 10 s
back-to-back burst first reports how many requests per second the server saturates at).
The server adds `X-Query-Count` (ECOLINK_QUERY_COUNT) so the queries per
request are read from the real server. The last line is
`web: p99 <ms> ms at <rps> req/s, <q> queries/request`.
"""

import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CLIENTS = int(os.environ.get("BENCH_WEB_CLIENTS", "50"))
SECONDS = float(os.environ.get("BENCH_WEB_SECONDS", "30"))
INTERVAL = float(os.environ.get("BENCH_WEB_INTERVAL", "1.0"))  # the page polls every 3 s
BURST_SECONDS = 10.0
HISTORY_STEPS = 2000  # metric rows already on the job: the fragment must not care


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-web: timed out waiting for {what}")
        time.sleep(0.3)


def make_database(base_url: str) -> tuple[str, str, str]:
    import psycopg

    name = f"ecolink_bench_web_{uuid.uuid4().hex[:6]}"
    admin = re.sub(r"/[^/]*$", "/postgres", base_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, re.sub(r"/[^/]*$", f"/{name}", base_url), admin


def drop_database(admin: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def one_request(port: int, path: str, cookie: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nHX-Request: true\r\n"
            f"Cookie: {cookie}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    elapsed = time.perf_counter() - started
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    match = re.search(r"(?im)^x-query-count: (\d+)", head)
    return elapsed, status, int(match.group(1)) if match else -1


async def load(
    port: int, path: str, cookie: str, *, seconds: float, interval: float
) -> tuple[list[float], list[int], int]:
    """CLIENTS clients, each polling every `interval` seconds (0: back to back)."""
    latencies, queries, errors = [], [], 0
    stop_at = time.monotonic() + seconds

    async def client(offset: float):
        nonlocal errors
        await asyncio.sleep(offset)  # spread the clients over one interval
        while time.monotonic() < stop_at:
            next_at = time.monotonic() + interval
            try:
                elapsed, status, count = await one_request(port, path, cookie)
            except OSError:
                errors += 1
                continue
            if status != 200:
                errors += 1
                continue
            latencies.append(elapsed)
            queries.append(count)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    await asyncio.gather(*(client(interval * i / CLIENTS) for i in range(CLIENTS)))
    return latencies, queries, errors


def main() -> None:
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        raise SystemExit("bench-web needs DATABASE_URL on PostgreSQL and REDIS_URL (make does it)")
    db_name, db_url, admin = make_database(base_url)
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ECOLINK_VAR_DIR": str(work / "var"),
        "ECOLINK_ARTIFACTS_DIR": str(work / "artifacts"),
        "ECOLINK_INTERNAL_URL": f"http://127.0.0.1:{port}",
        "ECOLINK_QUERY_COUNT": "1",
        "ECOLINK_TRAINER_TEST_STEP_SLEEP": "3",  # keep it training through the run
        "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:6]}",
        "ECOLINK_RECONCILE_SECONDS": "1",
        "ECOLINK_METER_TICK_SECONDS": "1",
        "DEBUG": "0",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecolink.settings")
    procs: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("seed_catalog", verbosity=0)
        call_command("make_tiny_model", verbosity=0)
        job, cookie = prepare_job()

        log = open(work / "server.log", "w")  # noqa: SIM115 - closed with the processes
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "ecolink.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(max(2, os.cpu_count() or 2)),
                    "--threads",
                    "4",
                    "--worker-class",
                    "gthread",
                    "--backlog",
                    "512",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "worker", "worker", "-B"),
                    *("--pool=solo", "--loglevel=INFO", "--schedule", str(work / "beat-schedule")),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_for(lambda: port_open(port), 60, "gunicorn")
        from ecolink.finetune.models import Job

        wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.Status.TRAINING, 240, "training")
        path = f"/fine-tune/{job.pk}/status"
        burst, _, _ = asyncio.run(load(port, path, cookie, seconds=BURST_SECONDS, interval=0))
        print(f"back-to-back burst: {len(burst) / BURST_SECONDS:.0f} req/s saturation")
        latencies, queries, errors = asyncio.run(
            load(port, path, cookie, seconds=SECONDS, interval=INTERVAL)
        )
        status = Job.objects.get(pk=job.pk).status
        report(latencies, queries, errors, status)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        stop_pods(work / "var" / "pods")
        from django.db import connections

        connections.close_all()
        drop_database(admin, db_name)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_pods(folder: Path) -> None:
    import contextlib
    import json

    for state in folder.glob("*.json"):
        pid = json.loads(state.read_text()).get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def prepare_job():
    """An org with a ready dataset, a queued tiny job with a long metric history, and a
    logged-in session cookie for its member."""
    import json as jsonlib

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.files.base import ContentFile

    from ecolink.accounts.models import Membership, Organization
    from ecolink.billing.services import ledger_post
    from ecolink.catalog.models import BaseModel, GpuType, Region
    from ecolink.datasets.models import Dataset
    from ecolink.datasets.services import dataset_upload, dataset_validate
    from ecolink.finetune.actions import job_approve
    from ecolink.finetune.hyperparams import default_hyperparameters
    from ecolink.finetune.models import JobMetric, WizardDraft
    from worker.celery import app  # noqa: F401 - the app the launch task is sent through

    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    Membership.objects.create(user=user, organization=org, role="owner")
    ledger_post(organization_id=org.pk, amount_micros=50_000_000, key="bench", kind="topup")
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Status check number {i}?"},
                {"role": "assistant", "content": "ECOLINK-OK"},
            ]
        }
        for i in range(200)
    ]
    body = "\n".join(jsonlib.dumps(r) for r in rows).encode()
    dataset = dataset_upload(
        organization_id=org.pk, file=ContentFile(body), filename="chats.jsonl", name="bench"
    )
    dataset_validate(dataset_id=dataset.pk)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.READY, dataset.status
    base = BaseModel.objects.get(hf_id="ecolink/tiny-qwen2")
    hp = {**default_hyperparameters(context_length=base.context_length), "max_seq_length": 128}
    hp.update(epochs=3, micro_batch_size=4, save_steps=1000)
    draft = WizardDraft.objects.create(
        user=user,
        organization=org,
        data={
            "dataset": dataset.pk,
            "base_model": base.pk,
            "gpu_type": GpuType.objects.get(slug="cpu").pk,
            "gpu_count": 1,
            "region": Region.objects.get(slug="local").pk,
            "hyperparameters": hp,
        },
    )
    job = job_approve(
        user=user,
        organization=org,
        token=str(draft.token),
        datasets=Dataset.objects.filter(organization=org),
    )  # its launch task waits on the broker until the worker starts
    # A long history: the fragment's cost must not grow with it.
    JobMetric.objects.bulk_create(
        JobMetric(job=job, kind="eval", step=10_000 + i, loss=1.0) for i in range(HISTORY_STEPS)
    )
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return job, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def report(latencies: list[float], queries: list[int], errors: int, status: str) -> None:
    if not latencies:
        raise SystemExit(f"bench-web: no successful request ({errors} errors)")
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    rps = len(ms) / SECONDS
    per_request = statistics.mean(queries)
    print(
        f"clients: {CLIENTS}, each every {INTERVAL:g} s, for {SECONDS:.0f} s: "
        f"{len(ms)} requests, {errors} errors"
    )
    print(f"job status at the end: {status}; queries/request min {min(queries)} max {max(queries)}")
    print(f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"web: p99 {p99:.0f} ms at {rps:.0f} req/s, {per_request:.1f} queries/request")


if __name__ == "__main__":
    main()
