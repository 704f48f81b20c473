"""Providers as plugins: each declares its configuration fields, its credential fields and the
plan feature it needs; the pages, the API and the CLI build their forms and checks from these
declarations. A new provider is one more entry in PROVIDERS (and its worker code)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import egress
from ..analytics.events import RESERVED, TYPE_MAX, TYPE_PATTERN
from ..events.catalogue import CATALOGUE, EMITTED
from ..rules import RuleViolation

KEY_PATTERN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
HEADER_PATTERN = re.compile(r"[A-Za-z0-9\-]{1,64}")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"        # text | url | events | key | header | minutes | event_type
    required: bool = False
    default: Any = None
    help: str = ""
    max_length: int = 200


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    description: str
    feature: str              # the plan (or tenant) feature that allows it
    config: tuple[Field, ...] = ()
    credentials: tuple[Field, ...] = field(default=())  # typed by a person, write-only
    signing_secret: bool = False  # the portal makes a `whsec_…` secret, shown once
    syncs: bool = False           # pulled by the worker on a schedule ("Sync now")
    sends: bool = False           # receives the portal's events ("Send test event")


PROVIDERS: dict[str, Provider] = {p.key: p for p in (
    Provider("webhook", "Outbound webhook",
             "The portal sends the events you choose to your URL, signed the Standard Webhooks way "
             "(webhook-id, webhook-timestamp, webhook-signature), retried for about a day.",
             "webhooks",
             config=(Field("url", "Endpoint URL", "url", True, help="Where the portal POSTs each event (https).",
                           max_length=2000),
                     Field("events", "Events", "events", True, help="The event types this endpoint receives.")),
             signing_secret=True, sends=True),
    Provider("json_source", "HTTP JSON source",
             "The worker pulls a URL that answers JSON pages (a POS or ad-platform export), follows its "
             "pagination and records each item as an analytics event.",
             "json_source",
             config=(Field("url", "URL", "url", True, help="The first page; later syncs resume from the cursor.",
                           max_length=2000),
                     Field("event_type", "Event type", "event_type", True,
                           help="The analytics type of each record, e.g. pos.sale."),
                     Field("records_key", "Records key", "key", default="data",
                           help="The member of each page that holds the list of records."),
                     Field("next_key", "Next-page key", "key", default="next",
                           help="The member holding the next page's URL (a Link: rel=next header works too)."),
                     Field("cursor_key", "Cursor key", "key", default="cursor",
                           help="The member of the last page holding the cursor for the next sync."),
                     Field("cursor_param", "Cursor parameter", "key", default="cursor",
                           help="The query parameter the cursor is sent back in."),
                     Field("id_key", "Record id key", "key", default="id"),
                     Field("time_key", "Record time key", "key", default="occurred_at"),
                     Field("auth_header", "Credential header", "header", default="Authorization",
                           help="Authorization sends “Bearer <token>”; any other header sends the token as it is."),
                     Field("interval_minutes", "Sync every (minutes)", "minutes", default=60)),
             credentials=(Field("token", "Token", help="Sent with every request; stored encrypted, never shown again.",
                                max_length=4096),),
             syncs=True),
    Provider("inbound", "Inbound events",
             "A URL of this integration accepts batches of events signed the Standard Webhooks way and records "
             "them as analytics events. Bad signatures, old timestamps and replays are refused.",
             "inbound_events", signing_secret=True),
)}

MINUTES = (5, 1440)


def get(key: str) -> Provider:
    provider = PROVIDERS.get(key)
    if provider is None:
        raise RuleViolation("Choose one of the providers.", field="provider")
    return provider


def event_choices() -> list[tuple[str, str]]:
    return [(name, CATALOGUE[name].description) for name in EMITTED]


def clean_config(provider: Provider, raw: dict[str, Any]) -> dict[str, Any]:
    """The provider's configuration from what a form or a JSON body gave, or a RuleViolation
    naming the field. Unknown members are dropped."""
    out: dict[str, Any] = {}
    for f in provider.config:
        value = raw.get(f.name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, "", []):
            if f.required:
                raise RuleViolation(f"{f.label} is required.", field=f.name)
            if f.default is not None:
                out[f.name] = f.default
            continue
        out[f.name] = _clean(f, value)
    return out


def _clean(f: Field, value: Any) -> Any:
    if f.kind == "events":
        names = value.split() if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RuleViolation("Choose event types from the catalogue.", field=f.name)
        unknown = [n for n in names if n not in EMITTED]
        if unknown:
            raise RuleViolation(f"Not in the event catalogue: {', '.join(sorted(unknown))[:200]}.", field=f.name)
        return sorted(set(names), key=EMITTED.index)
    if f.kind == "minutes":
        try:
            minutes = int(value)
        except (TypeError, ValueError):
            raise RuleViolation(f"{f.label}: a whole number of minutes.", field=f.name) from None
        if not MINUTES[0] <= minutes <= MINUTES[1]:
            raise RuleViolation(f"{f.label}: between {MINUTES[0]} and {MINUTES[1]:,} minutes.", field=f.name)
        return minutes
    if not isinstance(value, str) or len(value) > f.max_length or "\x00" in value:
        raise RuleViolation(f"{f.label}: text of at most {f.max_length} characters.", field=f.name)
    if f.kind == "url":
        try:
            egress.check_url(value)
        except egress.Refused as exc:
            raise RuleViolation(str(exc), field=f.name) from None
    elif f.kind == "key" and not KEY_PATTERN.fullmatch(value):
        raise RuleViolation(f"{f.label}: letters, digits, _ . and - only.", field=f.name)
    elif f.kind == "header" and not HEADER_PATTERN.fullmatch(value):
        raise RuleViolation(f"{f.label}: a header name (letters, digits and -).", field=f.name)
    elif f.kind == "event_type":
        if len(value) > TYPE_MAX or not TYPE_PATTERN.fullmatch(value):
            raise RuleViolation(f"{f.label}: lower-case letters, digits and _ in dot-separated parts, e.g. pos.sale.",
                                field=f.name)
        if value.split(".", 1)[0] in RESERVED:
            raise RuleViolation(f"{f.label}: types starting with “{value.split('.', 1)[0]}.” are the portal's own.",
                                field=f.name)
    return value


def clean_credentials(provider: Provider, raw: dict[str, Any]) -> dict[str, str]:
    out = {}
    for f in provider.credentials:
        value = raw.get(f.name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > f.max_length or any(c in value for c in "\x00\r\n"):
            raise RuleViolation(f"{f.label}: one line of at most {f.max_length:,} characters.", field=f.name)
        out[f.name] = value
    return out
