"""Sending one message over SMTP_URL: smtp://[user:pass@]host[:port][?starttls=1] or smtps://..."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit


class SmtpConfigError(ValueError):
    pass


def parse(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise SmtpConfigError(f"SMTP_URL must look like smtp://host:port or smtps://user:pass@host, not {url!r}")
    query = parse_qs(parts.query)
    return {
        "ssl": parts.scheme == "smtps",
        "starttls": query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes"),
        "host": parts.hostname,
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }


def send(url: str, message: EmailMessage, timeout: float = 10.0) -> None:
    cfg = parse(url)
    context = ssl.create_default_context()
    if cfg["ssl"]:
        client = smtplib.SMTP_SSL(cfg["host"], cfg["port"], timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(cfg["host"], cfg["port"], timeout=timeout)
    with client:
        if cfg["starttls"]:
            client.starttls(context=context)
        if cfg["username"]:
            client.login(cfg["username"], cfg["password"] or "")
        client.send_message(message)
