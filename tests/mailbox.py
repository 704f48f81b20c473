"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
from __future__ import annotations

import email
import re
import socket
import time
from email import policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    # aiosmtpd's Controller cannot take port 0: pick a free port first.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def wait_for(self, count: int, to: str, timeout: float = 45.0) -> list:
        """Messages to `to` (other tests' queued mail may arrive too), once `count` are in. The
        wait is long because a loaded 2-core machine has held a delivery for over 15 s; a mail that
        never comes still fails the test, only later."""
        deadline = time.time() + timeout
        while len(self.to(to)) < count and time.time() < deadline:
            time.sleep(0.02)
        return self.to(to)

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in m["To"]]


class SmtpServer:
    def __init__(self, port: int | None = None, inbox: Inbox | None = None):
        self.port = port or free_port()
        self.inbox = inbox or Inbox()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None


def link_in(message, base: str) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(re.escape(base) + r"(/invitations/[A-Za-z0-9_-]+)", text)
    assert match, f"no invitation link in: {text}"
    return match.group(1)


class RefusingInbox(Inbox):
    """A server that refuses every message for good (a 5xx answer to DATA)."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        return "550 5.1.1 mailbox unavailable"


class PickyInbox(Inbox):
    """A server that answers some recipients at RCPT TO with a fixed reply ({address: "550 ..."}),
    as a real one refuses an unknown mailbox (5xx, for good) or greylists (4xx, try later)."""

    def __init__(self, replies: dict[str, str]):
        super().__init__()
        self.replies = replies

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"
