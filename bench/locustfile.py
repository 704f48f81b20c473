"""The load mix of `make load` (bench/load.py runs it headless): tenant admins signing in and working.

Each simulated user signs in once as one of the sample admins, then mostly reads (dashboard, device
list with search and paging, a site page) and sometimes writes (a device status change, an invitation
that is then cancelled, so the plan's seats never run out). Sign-in itself is measured too.

The sign-in storm mix (`LOAD_SIGNINS_PER_SECOND=2 make load`, issue 27) adds `SignInStorm` users, one
sign-in a second each (the next one on the sign-in page, then out again), beside the admins. Every
request's time is also written by group to LOAD_GROUPS_FILE when locust stops: the pages (everything
but the sign-in POSTs) and the sign-ins, so their percentiles are reported apart.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import re

from locust import HttpUser, between, constant_throughput, events, task

PASSWORD = "portal-demo-2026"
TENANT = "acme-corp"
ACCOUNTS = itertools.cycle(["alice@acme.com", "consultant@external.com"])
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
DEVICE = re.compile(r'href="/t/acme-corp/devices/([0-9a-f-]{36})"')
SITE = re.compile(r'href="/t/acme-corp/sites/([0-9a-f-]{36})"')
NEXT = re.compile(r'<a href="(/t/acme-corp/devices/\?[^"]*after=[^"]+)"')
CANCEL = re.compile(r'action="(/t/acme-corp/invitations/[0-9a-f-]{36}/cancel[^"]*)"')
STATUSES = ["online", "offline", "maintenance"]


class TenantAdmin(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self):
        self.email = next(ACCOUNTS)
        self.sign_in()
        page = self.client.get(f"/t/{TENANT}/devices/", name="device list").text
        self.devices = DEVICE.findall(page) or []
        self.sites = SITE.findall(self.client.get(f"/t/{TENANT}/sites/", name="site list").text) or []

    def sign_in(self):
        token = CSRF.search(self.client.get("/login", name="sign-in page").text).group(1)
        with self.client.post("/login", data={"email": self.email, "password": PASSWORD, "csrf_token": token},
                              name="sign in", allow_redirects=False, catch_response=True) as response:
            if response.status_code != 303:
                response.failure(f"sign-in answered {response.status_code}")

    def csrf(self, html: str) -> str:
        return CSRF.search(html).group(1)

    @task(4)
    def dashboard(self):
        self.client.get(f"/t/{TENANT}/", name="dashboard")

    @task(6)
    def device_list(self):
        prefix = random.choice(["", "", "a", "s", "d", "sn-"])
        page = self.client.get(f"/t/{TENANT}/devices/", params={"q": prefix} if prefix else None,
                               headers={"HX-Request": "true"} if prefix else None, name="device list").text
        found = NEXT.search(page)
        if found:
            self.client.get(found.group(1).replace("&amp;", "&"), name="device list, next page")

    @task(3)
    def site_page(self):
        if self.sites:
            self.client.get(f"/t/{TENANT}/sites/{random.choice(self.sites)}", name="site page")

    @task(2)
    def status_change(self):
        if not self.devices:
            return
        device = random.choice(self.devices)
        page = self.client.get(f"/t/{TENANT}/devices/{device}", name="device page").text
        with self.client.post(f"/t/{TENANT}/devices/{device}/status", name="status change",
                              data={"status": random.choice(STATUSES), "csrf_token": self.csrf(page)},
                              headers={"HX-Request": "true"}, catch_response=True) as response:
            if response.status_code not in (200, 303):
                response.failure(f"status change answered {response.status_code}")

    @task(1)
    def invitation(self):
        page = self.client.get(f"/t/{TENANT}/invitations/", name="invitations").text
        email = f"load-{random.getrandbits(48):x}@example.com"
        with self.client.post(f"/t/{TENANT}/invitations/", name="invite",
                              data={"emails": email, "role": "viewer", "csrf_token": self.csrf(page)},
                              catch_response=True) as response:
            if response.status_code != 200 or email not in response.text:
                response.failure(f"invite answered {response.status_code}")
                return
            listing = response.text
        cancel = next((url for url in CANCEL.findall(listing.split(email, 1)[1][:3000])), None)
        if cancel:
            self.client.post(cancel.replace("&amp;", "&"), data={"csrf_token": self.csrf(listing)},
                             name="cancel invitation")

    @task(1)
    def sign_in_again(self):
        self.client.post("/logout", data={"csrf_token": self.csrf(self.client.get("/account", name="account").text)},
                         name="sign out", allow_redirects=False)
        self.sign_in()


class SignInStorm(HttpUser):
    """One sign-in a second (bench/load.py starts LOAD_SIGNINS_PER_SECOND of these)."""
    wait_time = constant_throughput(1)
    fixed_count = int(os.environ.get("LOCUST_STORM_USERS") or 0)

    @task
    def sign_in_and_out(self):
        token = CSRF.search(self.client.get("/login", name="storm: sign-in page").text).group(1)
        with self.client.post("/login", data={"email": "bob@acme.com", "password": PASSWORD, "csrf_token": token},
                              name="storm: sign in", allow_redirects=False, catch_response=True) as response:
            if response.status_code != 303:
                response.failure(f"sign-in answered {response.status_code}")
                return
        page = self.client.get("/account", name="storm: account").text
        self.client.post("/logout", data={"csrf_token": CSRF.search(page).group(1)}, name="storm: sign out",
                         allow_redirects=False)


SIGN_INS = {"sign in", "storm: sign in"}
_groups: dict[str, list[float]] = {"pages": [], "sign-ins": []}


@events.request.add_listener
def _by_group(name, response_time, exception=None, **_):
    if exception is None:
        _groups["sign-ins" if name in SIGN_INS else "pages"].append(response_time)


@events.quitting.add_listener
def _write_groups(environment, **_):
    path = os.environ.get("LOAD_GROUPS_FILE")
    if path:
        with open(path, "w") as out:
            json.dump(_groups, out)
