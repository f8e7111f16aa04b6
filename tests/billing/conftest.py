"""Billing fixtures: a fake Stripe API on loopback (Stripe's servers are the one thing
these tests cannot reach) and webhook signing done by hand, as Stripe documents it."""

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.factories import OrganizationFactory

WEBHOOK_SECRET = "whsec_test_0123456789abcdef"
SECRET_KEY = "sk_test_fake_4242424242"


@pytest.fixture
def org(db):
    return OrganizationFactory()


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A `Stripe-Signature` header: HMAC-SHA256 of `<t>.<payload>` under the secret."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def checkout_session(org_id, *, session_id="cs_test_a1", amount=2_500, paid=True, **extra) -> dict:
    """A Checkout session as Stripe sends it, trimmed to the fields that matter here."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "mode": "payment",
        "amount_total": amount,
        "currency": "usd",
        "client_reference_id": str(org_id),
        "metadata": {"organization_id": str(org_id)},
        "payment_status": "paid" if paid else "unpaid",
        "status": "complete",
        "created": int(time.time()) - 60,
        "url": None,
        **extra,
    }


def event(session: dict, *, event_id="evt_1", type="checkout.session.completed") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "type": type,
            "livemode": False,
            "data": {"object": session},
        }
    ).encode()


@pytest.fixture
def webhook(settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
    settings.STRIPE_WEBHOOK_CLOCK_SKEW_SECONDS = 60


@dataclass
class FakeStripe:
    """Answers the Checkout-session endpoints from `sessions` and records each request."""

    url: str = ""
    sessions: dict[str, dict] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    # When set, session creation answers this Stripe error instead.
    create_error: dict | None = None

    def created(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripe

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, form: dict) -> None:
        parts = urlsplit(self.path)
        self.fake.requests.append(
            {
                "method": self.command,
                "path": parts.path,
                "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                "form": form,
                "headers": dict(self.headers),
            }
        )

    def do_GET(self):
        self._record({})
        path = urlsplit(self.path).path
        if path == "/v1/checkout/sessions":
            data = list(self.fake.sessions.values())
            return self._answer(
                200, {"object": "list", "url": path, "has_more": False, "data": data}
            )
        match = re.fullmatch(r"/v1/checkout/sessions/([\w]+)", path)
        if match and match[1] in self.fake.sessions:
            return self._answer(200, self.fake.sessions[match[1]])
        return self._answer(404, {"error": {"type": "invalid_request_error", "message": "No such"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self._record(form)
        if urlsplit(self.path).path != "/v1/checkout/sessions":
            return self._answer(404, {"error": {"type": "invalid_request_error"}})
        if self.fake.create_error:
            return self._answer(400, {"error": self.fake.create_error})
        session_id = f"cs_test_{len(self.fake.requests)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "payment_status": "unpaid",
            "status": "open",
        }
        self.fake.sessions[session_id] = session
        return self._answer(200, session)


@pytest.fixture
def fake_stripe(settings):
    """A Stripe API on loopback, with the settings that make the app use it."""
    fake = FakeStripe()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = fake.url
    settings.TEST_MODE_TOPUP = False
    yield fake
    server.shutdown()
    server.server_close()
