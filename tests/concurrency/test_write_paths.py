"""Every write path that takes the tenant lock or appends to the audit chain, run against every
other (and itself) in many threads on one tenant, through the whole request (views, services,
the commit at the edge) against the real database. Expected: no deadlock in PostgreSQL's
statistics, no 5xx, and the tenant's audit chain verifies.

Not part of `make test` (it takes a few minutes): `make test-concurrency`, which `.ci/run` runs.
CONCURRENCY_THREADS and CONCURRENCY_ROUNDS size it; the figures are printed per pair.
"""
from __future__ import annotations

import io
import itertools
import os
import secrets
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from conftest import csrf_token, login
from test_agents import issue
from test_api import get_token, make_client
from test_roles import make_role

from portal import metrics
from portal.audit.chain import verify_tenant
from portal.database.context import tenant_scope
from portal.extensions import db
from portal.invitations.models import Invitation
from portal.invitations.tokens import hash_token
from portal.tasks.models import Task
from portal.tenancy.models import MembershipRole

THREADS = int(os.environ.get("CONCURRENCY_THREADS", "8"))  # per pair: half run one path, half the other
ROUNDS = int(os.environ.get("CONCURRENCY_ROUNDS", "6"))    # requests per thread


class Shop:
    """One tenant with everything the paths need; each path gets what it changes from here."""

    def __init__(self, app, factory):
        self.app, self.factory = app, factory
        self.owner = factory.user(name="Olive Owner")
        self.members = [factory.user(name=f"Member {i}") for i in range(4)]
        self.t = factory.tenant(members={"owner": self.owner}, sites=3, devices=12, max_users=10_000)
        with app.app_context(), tenant_scope(db.session, self.t["id"], actor="test:setup"):
            for m in self.members:
                db.session.execute(sa.text(
                    "INSERT INTO user_tenant_associations (id, tenant_id, user_id, role, status) "
                    "VALUES (gen_random_uuid(), :t, :u, 'member', 'active')"), {"t": self.t["id"], "u": m.id})
            db.session.commit()
        self.keeper = make_role(app, self.t["id"], "Status keeper", ["tenant:view", "devices:status"])
        self.slug = self.t["slug"]
        self.base = f"/t/{self.slug}"
        self.devices = [str(d) for d in self.t["devices"]]
        self.sites = [str(s) for s in self.t["sites"]]
        self._clients = threading.local()
        self._lock = threading.Lock()
        self._serial = itertools.count()
        # Agents: one single-device credential per device of the last site.
        owner = self.client()
        self.agent_secrets = []
        for device in self.devices[-4:]:
            self.agent_secrets.append(issue(owner, self.slug, device))
        client_id, secret = make_client(app, self.t["id"], ["devices:view", "devices:write", "devices:status",
                                                            "sites:view", "sites:write"])
        self.api_token = get_token(app.test_client(), client_id, secret).get_json()["access_token"]
        self.tasks = []
        for i in range(4):
            r = owner.post(f"{self.base}/tasks/new", data={"csrf_token": csrf_token(owner), "title": f"Task {i}",
                                                           "priority": "medium"})
            assert r.status_code == 303, r.status_code
        with app.app_context(), tenant_scope(db.session, self.t["id"], actor="test:setup"):
            self.tasks = [str(t) for t in db.session.scalars(sa.select(Task.id).where(Task.tenant_id == self.t["id"]))]

    def next(self) -> int:
        with self._lock:
            return next(self._serial)

    def client(self):
        """The owner's signed-in test client of this thread (and its CSRF token)."""
        c = getattr(self._clients, "owner", None)
        if c is None:
            c = self.app.test_client()
            login(c, self.owner.email)
            c.csrf = csrf_token(c)
            self._clients.owner = c
        return c

    def invitations(self, count: int) -> list[tuple[str, object]]:
        """Pending invitations with known tokens, each for a new user who is signed in to accept."""
        made = []
        users = [self.factory.user(name=f"Invitee {i}") for i in range(count)]
        with self.app.app_context(), tenant_scope(db.session, self.t["id"], actor="test:setup"):
            for user in users:
                token = secrets.token_urlsafe(32)
                db.session.add(Invitation(tenant_id=self.t["id"], email=user.email, token_hash=hash_token(token),
                                          invited_by=self.owner.id, role=MembershipRole.MEMBER, site_ids=[],
                                          expires_at=datetime.now(timezone.utc) + timedelta(days=7)))
                made.append((token, user))
            db.session.commit()
        return made


def _post(c, url, data=None, **kw):
    return c.post(url, data={"csrf_token": c.csrf, **(data or {})}, **kw)


# Each path: prepare(shop, threads, rounds) -> state, then step(shop, state, thread, round) -> response.
def _invite(shop, state, t, r):
    return _post(shop.client(), f"{shop.base}/invitations/",
                 {"emails": f"inv-{secrets.token_hex(5)}@example.com", "role": "member"})


def _accept_prepare(shop, threads, rounds):
    """Each invitee signed in beforehand (argon2 is slow on purpose: not part of the race)."""
    prepared = []
    for token, user in shop.invitations(threads * rounds):
        c = shop.app.test_client()
        login(c, user.email)
        prepared.append((token, c, csrf_token(c)))
    return prepared


def _accept(shop, state, t, r):
    token, c, csrf = state[t * ROUNDS + r]
    return c.post(f"/invitations/{token}", data={"csrf_token": csrf, "action": "accept"})


def _bring_back(shop, state, t, r):
    """Decommission a device and bring it back (the plan's device count is taken again)."""
    device = shop.devices[t % 4]
    status = "decommissioned" if r % 2 == 0 else "online"
    return _post(shop.client(), f"{shop.base}/devices/{device}/status", {"status": status})


def _status(shop, state, t, r):
    device = shop.devices[4 + (t + r) % 4]
    return _post(shop.client(), f"{shop.base}/devices/{device}/status",
                 {"status": ("online", "offline", "maintenance")[(t + r) % 3]})


def _bulk(shop, state, t, r):
    ids = shop.devices[2:8] if (t + r) % 2 else list(reversed(shop.devices[2:8]))
    return _post(shop.client(), f"{shop.base}/devices/bulk",
                 {"ids": ids, "action": "status", "status": ("online", "offline")[r % 2]})


def _import(shop, state, t, r):
    n = shop.next()
    site = "Site 0 " + shop.slug
    body = ("name,type,serial_number,site\n"
            f"Imported {n}a,sensor,IMP-{shop.slug}-{n}-a,{site}\nImported {n}b,sensor,IMP-{shop.slug}-{n}-b,{site}\n")
    return _post(shop.client(), f"{shop.base}/devices/import",
                 {"file": (io.BytesIO(body.encode()), "devices.csv")}, content_type="multipart/form-data")


def _role(shop, state, t, r):
    member = shop.members[(t + r) % len(shop.members)]
    return _post(shop.client(), f"{shop.base}/members/{member.id}/role", {"role": ("viewer", "member")[r % 2]})


def _further(shop, state, t, r):
    """Give and take a further role (role sets): the tenant lock, then user_roles, then the audit chain."""
    member = shop.members[(t + r) % len(shop.members)]
    return _post(shop.client(), f"{shop.base}/members/{member.id}/further-roles",
                 {"roles": [shop.keeper] if r % 2 == 0 else []})


def _assign(shop, state, t, r):
    member = shop.members[t % len(shop.members)]
    site = shop.sites[r % len(shop.sites)]
    action = "assignments" if (r // len(shop.sites)) % 2 == 0 else "unassign"
    return _post(shop.client(), f"{shop.base}/sites/{site}/{action}", {"user_id": str(member.id)})


def _task(shop, state, t, r):
    task = shop.tasks[(t + r) % len(shop.tasks)]
    return _post(shop.client(), f"{shop.base}/tasks/{task}/status", {"status": ("in_progress", "open")[r % 2]})


def _heartbeat(shop, state, t, r):
    secret = shop.agent_secrets[t % len(shop.agent_secrets)]
    return shop.app.test_client().post("/api/v1/agent/heartbeat", json={"status": ("online", "error")[r % 2]},
                                       headers={"Authorization": f"Bearer {secret}"})


def _api(shop, state, t, r):
    c, auth = shop.app.test_client(), {"Authorization": f"Bearer {shop.api_token}"}
    if r % 3 == 0:
        n = shop.next()
        return c.post("/api/v1/devices", headers=auth, json={
            "name": f"API {n}", "type": "sensor", "serial_number": f"API-{shop.slug}-{n}", "site_id": shop.sites[1]})
    if r % 3 == 1:
        return c.post("/api/v1/devices/bulk-status", headers=auth,
                      json={"ids": shop.devices[3:7], "status": ("online", "offline")[t % 2]})
    return c.post("/api/v1/sites", headers=auth, json={"name": f"API site {shop.next()}", "timezone": "UTC"})


def _oauth_prepare(shop, threads, rounds):
    """A public app, and each thread's member signed in to allow it."""
    from test_oauth_apps import REDIRECT, register
    client_id, _ = register(shop.app, shop.t["id"], ["devices:view", "devices:status"])
    clients = []
    for i in range(threads):
        c = shop.app.test_client()
        login(c, shop.members[i % len(shop.members)].email)
        c.csrf = csrf_token(c)
        clients.append(c)
    return client_id, REDIRECT, clients


def _oauth(shop, state, t, r):
    """Allow (grant created or updated), redeem the code, refresh, and present the used refresh
    token again (the grant ends: a row lock and an audit row). The first unexpected answer."""
    client_id, redirect_uri, clients = state
    c, http = clients[t], shop.app.test_client()
    verifier = secrets.token_urlsafe(48)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                       "scope": ("devices:view", "devices:view devices:status")[r % 2], "state": str(r),
                       "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"})
    answer = c.post(f"/oauth/authorize?{query}", data={"csrf_token": c.csrf, "decision": "allow"})
    if answer.status_code != 303:
        return answer
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    token = http.post("/oauth/token", data={"grant_type": "authorization_code", "code": code, "client_id": client_id,
                                            "redirect_uri": redirect_uri, "code_verifier": verifier})
    if token.status_code != 200:  # 400 when another thread's reuse ended the same grant meanwhile
        return token
    refresh = {"grant_type": "refresh_token", "refresh_token": token.get_json()["refresh_token"], "client_id": client_id}
    first = http.post("/oauth/token", data=refresh)
    return first if first.status_code != 200 else http.post("/oauth/token", data=refresh)


def _suspend_prepare(shop, threads, rounds):
    """A system admin, and members of the shop's tenant of its own to suspend and reactivate (a
    pair may end with one suspended: the shared members must stay able to sign in for other paths)."""
    from portal.accounts.models import UserType
    people = [shop.factory.user(name=f"Suspendable {i}") for i in range(4)]
    with shop.app.app_context(), tenant_scope(db.session, shop.t["id"], actor="test:setup"):
        for person in people:
            db.session.execute(sa.text(
                "INSERT INTO user_tenant_associations (id, tenant_id, user_id, role, status) "
                "VALUES (gen_random_uuid(), :t, :u, 'member', 'active')"), {"t": shop.t["id"], "u": person.id})
        db.session.commit()
    return {"admin": shop.factory.user(user_type=UserType.SYSTEM_ADMIN, name="Console Admin"),
            "people": people, "clients": threading.local()}


def _suspend(shop, state, t, r):
    c = getattr(state["clients"], "c", None)
    if c is None:
        c = state["clients"].c = shop.app.test_client()
        login(c, state["admin"].email)
        c.csrf = csrf_token(c)
    member = state["people"][(t + r) % len(state["people"])]
    action = ("suspend", "reactivate")[r % 2]  # 422 when another thread got there first
    return _post(c, f"/admin/users/{member.id}/status", {"action": action, "reason": "Concurrency test"})


def _scim_prepare(shop, threads, rounds):
    """A SCIM token, one provisioned person per thread (to switch on and off) and one group."""
    from test_scim import make_token
    token = make_token(shop.app, shop.t["id"])
    c, auth = shop.app.test_client(), {"Authorization": f"Bearer {token}"}
    people = []
    for t in range(threads):
        made = c.post("/scim/v2/Users", headers=auth, json={"userName": f"scim-{shop.next()}@example.com"})
        assert made.status_code == 201, made.get_data(as_text=True)
        people.append(made.get_json()["id"])
    group = c.post("/scim/v2/Groups", headers=auth, json={"displayName": f"Field {shop.next()}"})
    assert group.status_code == 201, group.get_data(as_text=True)
    return {"auth": auth, "people": people, "group": group.get_json()["id"]}


def _scim(shop, state, t, r):
    """An identity provider: provisions someone, suspends or reactivates someone, moves someone in
    or out of a group (the tenant lock, membership rows, roles through group mappings, audit)."""
    c, auth, person = shop.app.test_client(), state["auth"], state["people"][t]
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}
    if r % 3 == 0:
        return c.post("/scim/v2/Users", headers=auth, json={"userName": f"scim-{shop.next()}@example.com"})
    if r % 3 == 1:
        return c.patch(f"/scim/v2/Users/{person}", headers=auth, json={
            **patch, "Operations": [{"op": "replace", "path": "active", "value": r % 2 == 0}]})
    op = {"op": "add", "path": "members", "value": [{"value": person}]} if (r // 3) % 2 == 0 else \
        {"op": "remove", "path": f'members[value eq "{person}"]'}
    return c.patch(f"/scim/v2/Groups/{state['group']}", headers=auth, json={**patch, "Operations": [op]})


PATHS = {
    "invite": (None, _invite), "accept": (_accept_prepare, _accept), "bring-back": (None, _bring_back),
    "status": (None, _status), "bulk-status": (None, _bulk), "import": (None, _import), "role": (None, _role),
    "further-roles": (None, _further),
    "assign": (None, _assign), "task": (None, _task), "heartbeat": (None, _heartbeat), "api": (None, _api),
    "oauth": (_oauth_prepare, _oauth),
    "suspend": (_suspend_prepare, _suspend),
    "scim": (_scim_prepare, _scim),
}
PAIRS = list(itertools.combinations_with_replacement(PATHS, 2))


def _deadlocks(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


def _retries() -> float:
    if not hasattr(metrics, "REQUEST_RETRIES"):
        return 0.0  # a checkout from before the retry at the edge (for "before" figures)
    return sum(s.value for m in metrics.REQUEST_RETRIES.collect() for s in m.samples if s.name.endswith("_total"))


@pytest.fixture(scope="module")
def shop(app, password_hash):
    from conftest import Factory
    return Shop(app, Factory(app, password_hash))


@pytest.mark.parametrize("first,second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_two_write_paths_at_once(app, shop, first, second):
    paths = [PATHS[first], PATHS[second]]
    half = THREADS // 2
    states = [prepare(shop, half, ROUNDS) if prepare else None for prepare, _ in paths]
    statuses: Counter = Counter()
    failures: list[str] = []
    deadlocks, retries = _deadlocks(app), _retries()
    start = threading.Barrier(half * 2)  # the threads started (an odd THREADS leaves one out)

    def worker(n: int):
        which = n % 2
        _, step = paths[which]
        start.wait()
        for r in range(ROUNDS):
            try:
                response = step(shop, states[which], n // 2, r)
            except Exception as exc:  # noqa: BLE001 (reported below, with the path)
                failures.append(f"{(first, second)[which]}: {exc!r}")
                continue
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{(first, second)[which]}: {response.status_code} "
                                f"{response.get_data(as_text=True)[:200]!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(half * 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a request hung"
    found_deadlocks = _deadlocks(app) - deadlocks
    print(f"\n{first}+{second}: {sum(statuses.values())} requests in {time.monotonic() - started:.1f} s, "
          f"statuses {dict(sorted(statuses.items()))}, deadlocks {found_deadlocks}, "
          f"retries {_retries() - retries:.0f}")
    assert not failures, failures[:5]
    assert found_deadlocks == 0
    with app.app_context(), tenant_scope(db.session, shop.t["id"], actor="test:setup"):
        result = verify_tenant(shop.t["id"])
    assert result.problem is None, str(result.problem)
