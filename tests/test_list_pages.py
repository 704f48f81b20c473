"""The sites and invitations lists page both ways and say where they stand ("3–4 of 5"),
counted exactly up to the cap and "N+" beyond it; the state is in the URL."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from conftest import login

from portal.database import paging
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.invitations import queries as invitation_queries
from portal.invitations.models import Invitation
from portal.sites import queries as site_queries
from portal.tenancy.models import MembershipRole


def links(html: str) -> dict[str, str]:
    return {rel: url.replace("&amp;", "&") for rel, url in re.findall(r'rel="(prev|next)" href="([^"]+)"', html)}


def position(html: str) -> str:
    return " ".join(re.search(r'<span class="position">(.*?)</span>', html, re.DOTALL).group(1).split())


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(site_queries, "PAGE_SIZE", 2)
    monkeypatch.setattr(invitation_queries, "PAGE_SIZE", 2)


def test_sites_page_forward_and_back_with_their_position(app, factory, small_pages, monkeypatch):
    owner = factory.user(name="Site Pager")
    t = factory.tenant(members={"owner": owner}, sites=5, devices=0)
    client = app.test_client()
    login(client, owner.email)
    first = client.get(f"/t/{t['slug']}/sites/").get_data(as_text=True)
    assert position(first) == "1–2 of 5" and set(links(first)) == {"next"}
    assert 'class="table stack"' in first  # stacked rows at 390 px
    second = client.get(links(first)["next"]).get_data(as_text=True)
    assert position(second) == "3–4 of 5" and set(links(second)) == {"prev", "next"}
    assert "after=" in links(first)["next"] and "before=" in links(second)["prev"]
    last = client.get(links(second)["next"]).get_data(as_text=True)
    assert position(last) == "5–5 of 5" and set(links(last)) == {"prev"}
    back = client.get(links(last)["prev"]).get_data(as_text=True)
    assert position(back) == "3–4 of 5"
    names = re.findall(r'<a href="/t/[^"]+/sites/[0-9a-f-]+">([^<]+)</a>', back)
    assert names == re.findall(r'<a href="/t/[^"]+/sites/[0-9a-f-]+">([^<]+)</a>', second)
    assert client.get(f"/t/{t['slug']}/sites/?before=zzzz-after-everything").status_code == 200
    monkeypatch.setattr(paging, "COUNT_CAP", 3)  # past the cap: "3+" (10,000+ in production)
    assert position(client.get(links(first)["next"]).get_data(as_text=True)) == "3–4 of 3+"
    assert position(client.get(links(second)["next"]).get_data(as_text=True)) == "1 shown of 3+"


def test_invitations_page_newest_first_both_ways_under_htmx(app, factory, small_pages):
    owner = factory.user(name="Invitation Pager")
    t = factory.tenant(members={"owner": owner}, sites=0, devices=0)
    now = datetime.now(UTC)
    with app.app_context(), tenant_scope(db.session, t["id"], actor="test:setup"):
        for i in range(5):
            db.session.add(Invitation(tenant_id=t["id"], role=MembershipRole.MEMBER, email=f"pager-{i}@example.com",
                                      token_hash=hashlib.sha256(secrets.token_bytes(16)).digest(),
                                      created_at=now - timedelta(minutes=i), last_sent_at=now,
                                      expires_at=now + timedelta(days=3)))
        db.session.commit()
    client = app.test_client()
    login(client, owner.email)
    first = client.get(f"/t/{t['slug']}/invitations/").get_data(as_text=True)
    assert position(first) == "1–2 of 5" and re.findall(r'data-email="([^"]+)"', first) == [
        "pager-0@example.com", "pager-1@example.com"]
    fragment = {"HX-Request": "true", "HX-Target": "invitation-list"}
    second = client.get(links(first)["next"], headers=fragment).get_data(as_text=True)
    assert "<html" not in second and position(second) == "3–4 of 5" and "status=pending" in links(second)["prev"]
    assert 'hx-target="#invitation-list"' in second
    back = client.get(links(second)["prev"]).get_data(as_text=True)
    assert position(back) == "1–2 of 5" and 'rel="prev"' not in back
    assert "No accepted invitations" in client.get(f"/t/{t['slug']}/invitations/?status=accepted").get_data(as_text=True)
