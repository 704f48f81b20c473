"""Issue 22's defects that broke trust, each with the test that would have caught it: what a
person sees on the page, in the bell or in an email, against the real app and the sample data."""
from __future__ import annotations

import html as htmllib
import re

import pytest
import sqlalchemy as sa
from conftest import SEED_PASSWORD, csrf_token, login

from portal.database.context import tenant_scope
from portal.extensions import db


def text_of(page: str) -> str:
    """The page's visible text, roughly: tags out, entities decoded, spaces collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page))).strip()


def form_data(page: str, action: str) -> dict:
    """What a browser submits for the form posting to `action`, as the page renders it: hidden
    fields and the checkboxes that are ticked."""
    form = re.search(r'<form[^>]*action="' + re.escape(action) + r'"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form posting to {action}"
    data = {}
    for tag in re.findall(r"<input\b[^>]*>", form.group(1)):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not name or (kind and kind.group(1) == "checkbox" and " checked" not in tag):
            continue
        data[name.group(1)] = htmllib.unescape(value.group(1)) if value else "y"
    return data


# 1. The dashboard printed tenant.type ("standard") as TechStart's plan (Pro).
def test_dashboard_shows_the_plan_by_its_name(client):
    login(client, "charlie@techstart.io", SEED_PASSWORD)
    seen = text_of(client.get("/t/techstart/").get_data(as_text=True))
    assert "Plan: Pro" in seen and "standard" not in seen


# 2. Rotating a gateway's secret from the device page dropped the gateway flag.
def test_rotating_a_gateway_secret_keeps_it_a_gateway(app, client, factory):
    owner = factory.user()
    t = factory.tenant(members={"owner": owner}, sites=1, devices=3)
    slug, gateway_device = t["slug"], t["devices"][0]
    login(client, owner.email)
    action = f"/t/{slug}/devices/{gateway_device}/agent/credential"
    client.post(action, data={"csrf_token": csrf_token(client), "gateway": "y"})
    page = client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True)
    assert "(gateway)" in text_of(page)
    # Rotate as a person would: submit the form as the page shows it.
    rotated = client.post(action, data=form_data(page, action)).get_data(as_text=True)
    secret = re.search(r'id="agent-secret"[^>]*value="([^"]+)"', rotated).group(1)
    batch = [{"device_id": str(d), "status": "online"} for d in t["devices"]]
    answer = app.test_client().post("/api/v1/agent/heartbeat", json={"devices": batch},
                                    headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.json
    # Unticking the box is the explicit way to make it a plain device agent again.
    page = client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True)
    plain = {k: v for k, v in form_data(page, action).items() if k != "gateway"}
    client.post(action, data=plain)
    assert "(gateway)" not in text_of(client.get(f"/t/{slug}/devices/{gateway_device}").get_data(as_text=True))


def test_the_credential_service_keeps_the_gateway_flag_by_default(app, factory):
    from portal.agents import credentials
    from portal.agents.models import AgentCredential
    from portal.devices.models import Device
    from portal.tenancy import TenantContext
    from portal.tenancy import Permission
    from portal.tenancy.roles import Role
    from portal.tenants.models import Tenant
    t = factory.tenant(sites=1, devices=1)
    with app.test_request_context(), tenant_scope(db.session, t["id"]):
        ctx = TenantContext(db.session.get(Tenant, t["id"]), None, Role("test", "Test", "", frozenset(Permission)))
        device = db.session.get(Device, (t["id"], t["devices"][0]))
        credentials.issue(ctx, device, gateway=True)
        credentials.issue(ctx, device)
        live = db.session.scalar(sa.select(AgentCredential).where(AgentCredential.revoked_at.is_(None)))
        assert live.gateway is True
        db.session.rollback()
