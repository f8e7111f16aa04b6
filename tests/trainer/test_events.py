"""Progress events: batched, authenticated, numbered, retried, and never in the way."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.trainer.events import EventReporter

from .conftest import read_events


class Platform:
    """A local HTTP endpoint that records what it is sent and answers as told."""

    def __init__(self, answers=()):
        self.answers = list(answers)  # status codes for the first requests, then 200
        self.requests = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = platform.answers.pop(0) if platform.answers else 200
                platform.requests.append(
                    {"auth": self.headers.get("Authorization"), "body": body, "status": status}
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self):
        return [e for r in self.requests if r["status"] == 200 for e in r["body"]["events"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def platform():
    server = Platform()
    yield server
    server.close()


def test_events_are_batched_numbered_and_carry_the_job_token(platform, monkeypatch):
    monkeypatch.setenv("ECOLINK_JOB_TOKEN", "tok-123")
    reporter = EventReporter(job_id="job-9", url=platform.url, flush_interval=0.2)
    reporter.emit("started", {"method": "lora"})
    reporter.phase("training")
    for step in range(1, 6):
        reporter.emit("metrics", {"step": step, "loss": 1.0 / step})
    reporter.close()

    events = platform.delivered()
    assert [e["seq"] for e in events] == list(range(1, 8))
    assert len(platform.requests) < len(events)  # batched
    assert {r["auth"] for r in platform.requests} == {"Bearer tok-123"}
    assert {r["body"]["job_id"] for r in platform.requests} == {"job-9"}
    assert {e["run_id"] for e in events} == {reporter.run_id}
    assert events[1] == {**events[1], "type": "phase", "data": {"phase": "training"}}
    assert all(isinstance(e["time"], float) for e in events)


def test_a_failing_platform_is_retried_with_backoff():
    platform = Platform(answers=[503, 500, 429])
    try:
        reporter = EventReporter(
            job_id="j", url=platform.url, token="t", flush_interval=0.01, initial_backoff=0.05
        )
        for step in range(3):
            reporter.emit("metrics", {"step": step})
        reporter.close(timeout=5)
        assert [e["data"]["step"] for e in platform.delivered()] == [0, 1, 2]
        assert [r["status"] for r in platform.requests][:3] == [503, 500, 429]
    finally:
        platform.close()


def test_a_refusal_is_not_retried_forever():
    platform = Platform(answers=[401])
    try:
        reporter = EventReporter(job_id="j", url=platform.url, token="bad", flush_interval=0.01)
        reporter.emit("started")
        reporter.close(timeout=5)
        assert len(platform.requests) == 1
    finally:
        platform.close()


@pytest.fixture
def silent_platform():
    """Accepts connections and never answers: the worst kind of down."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/events"
    listener.close()


def test_a_platform_that_is_down_never_stalls_training(silent_platform):
    reporter = EventReporter(
        job_id="j", url=silent_platform, token="t", flush_interval=0.01, request_timeout=0.5
    )
    started = time.monotonic()
    for step in range(500):
        reporter.emit("metrics", {"step": step})
    assert time.monotonic() - started < 0.5  # emitting never waits for the network
    started = time.monotonic()
    reporter.close(timeout=1.0)
    assert time.monotonic() - started < 3.0  # the final flush is bounded too


def test_the_file_reporter_writes_the_same_events(tmp_path):
    path = tmp_path / "events.jsonl"
    reporter = EventReporter(job_id="j", path=path)
    sent = [reporter.emit("started"), reporter.emit("checkpoint", {"step": 3, "path": "/x"})]
    reporter.close()
    assert read_events(path) == json.loads(json.dumps(sent))

    quiet = EventReporter(job_id="j", path=tmp_path / "rank1.jsonl", enabled=False)
    quiet.emit("started")
    assert not (tmp_path / "rank1.jsonl").exists()


def test_unknown_event_types_and_phases_are_bugs():
    reporter = EventReporter(job_id="j")
    with pytest.raises(ValueError):
        reporter.emit("progress")
    with pytest.raises(ValueError):
        reporter.phase("sleeping")


def test_a_training_run_reports_to_the_platform(platform, make_config, monkeypatch):
    from worker.trainer import exit_codes
    from worker.trainer.__main__ import run

    monkeypatch.setenv("ECOLINK_JOB_TOKEN", "job-token")
    config = make_config(events_url=platform.url, epochs=1)
    assert run(config) == exit_codes.OK
    events = platform.delivered()
    assert events == read_events(config.events_file)  # the file gets the very same events
    assert [e["type"] for e in events][:2] == ["started", "phase"]
    assert events[-1]["type"] == "finished"
    assert {r["auth"] for r in platform.requests} == {"Bearer job-token"}
    assert "job-token" not in config.to_json()
