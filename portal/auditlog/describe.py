"""Audit rows in words ("Alice Johnson moved 'HQ Lobby Camera' from Acme Headquarters to Acme
Warehouse"), their before/after differences, and links to the resources that still exist."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select

from ..accounts.models import User
from ..audit import actor_label
from ..devices.models import Device
from ..extensions import db
from ..sites.models import Site


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except (TypeError, ValueError):
        return None


@dataclass
class Names:
    """Names of the sites and people a page of rows mentions, and which resources still exist:
    three queries per page, however many rows."""
    sites: dict[str, str]
    users: dict[str, str]
    devices: set[str]

    @classmethod
    def for_rows(cls, tenant_id: UUID, rows) -> Names:
        site_ids, user_ids, device_ids = set(), set(), set()
        for row in rows:
            for snap in (row.before, row.after):
                if isinstance(snap, dict) and _uuid(snap.get("site_id")):
                    site_ids.add(_uuid(snap["site_id"]))
                if isinstance(snap, dict) and row.resource_type == "oauth_grant" and _uuid(snap.get("user_id")):
                    user_ids.add(_uuid(snap["user_id"]))  # the person who allowed the app
            rid = _uuid(row.resource_id)
            if rid is None:
                continue
            if row.resource_type == "site":
                site_ids.add(rid)
            elif row.resource_type == "device":
                device_ids.add(rid)
            elif row.resource_type == "membership":
                user_ids.add(rid)
        sites = dict(db.session.execute(select(Site.id, Site.name).where(
            Site.tenant_id == tenant_id, Site.id.in_(site_ids))).all()) if site_ids else {}
        users = dict(db.session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all()) \
            if user_ids else {}
        devices = set(db.session.scalars(select(Device.id).where(
            Device.tenant_id == tenant_id, Device.id.in_(device_ids)))) if device_ids else set()
        return cls({str(k): v for k, v in sites.items()}, {str(k): v for k, v in users.items()},
                   {str(d) for d in devices})

    @classmethod
    def all_sites(cls, tenant_id: UUID) -> Names:
        """For exports: every site name of the tenant (bounded by its sites, not its rows)."""
        sites = db.session.execute(select(Site.id, Site.name).where(Site.tenant_id == tenant_id)).all()
        return cls({str(k): v for k, v in sites}, {}, set())


def actor_name(row) -> str:
    if row.user_id is None:
        label = actor_label(row.details)
        return label[0].upper() + label[1:] if label else "The system"
    name = row.actor_name or row.actor_email or "A deleted user"
    via = row.details.get("via") if isinstance(row.details, dict) else None
    if isinstance(via, dict) and via.get("name"):
        return f"{name} (through {via['name']})"  # an app the person allowed (connected apps)
    return name


# Why a connected app's access ended (api.grants revoked_reason), in words.
GRANT_END_REASONS = {"person": "revoked by the person", "owner": "revoked by an administrator",
                     "refresh_reuse": "a used refresh token was presented again",
                     "code_reuse": "a used authorization code was presented again",
                     "member_removed": "the member left or was removed", "member_suspended": "the member was suspended",
                     "account": "the account was closed or suspended", "app_revoked": "revoked by the app"}


def _q(value: Any) -> str:
    return f"‘{value}’" if value not in (None, "") else "an unnamed item"


def sentence(row, names: Names) -> str:
    """One line saying who did what to what."""
    who = actor_name(row)
    before = row.before if isinstance(row.before, dict) else {}
    after = row.after if isinstance(row.after, dict) else {}
    name = after.get("name") or before.get("name")
    action = row.action

    def site(snapshot: dict) -> str:
        sid = str(snapshot.get("site_id") or "")
        return names.sites.get(sid) or snapshot.get("site") or "a deleted site"

    def person() -> str:
        return names.users.get(str(row.resource_id)) or after.get("email") or before.get("email") or "someone"

    if action == "device.move":
        return f"{who} moved {_q(name)} from {site(before)} to {site(after)}"
    if action == "device.status":
        return f"{who} changed the status of {_q(name)} from {before.get('status')} to {after.get('status')}"
    if action in ("device.update", "site.update"):
        changed = ", ".join(k.replace("_", " ") for k, _, _ in diff(before, after)) or "nothing"
        kind = "device" if action.startswith("device") else "site"
        return f"{who} edited {kind} {_q(name)} ({changed})"
    simple = {
        "device.create": "created device {n}{s}", "device.import": "imported device {n}{s}",
        "device.decommission": "decommissioned device {n}", "site.create": "created site {n}",
        "site.archive": "archived site {n}", "site.restore": "restored site {n}", "site.delete": "deleted site {n}",
    }
    if action in simple:
        if action == "site.create" and "sites" in after:  # the sample data's summary row
            return f"{who} created the sites {', '.join(after['sites'])}"
        at = f" at {site(after)}" if after.get("site_id") else ""
        return f"{who} " + simple[action].format(n=_q(name), s=at)
    if action == "site.assign":
        return f"{who} assigned {after.get('email', 'someone')} to {after.get('site', 'a site')}"
    if action == "site.unassign":
        return f"{who} removed {before.get('email', 'someone')} from {before.get('site', 'a site')}"
    if action == "member.role_change":
        by_groups = f" (groups: {', '.join(row.details['groups'])})" if isinstance(row.details, dict) \
            and row.details.get("groups") else ""
        return f"{who} changed the role of {person()} from {before.get('role')} to {after.get('role')}{by_groups}"
    if action in ("member.suspend", "member.reactivate"):
        return f"{who} {'suspended' if action == 'member.suspend' else 'reactivated'} {person()}"
    if action == "member.remove":
        return f"{who} removed {person()} from the organization"
    if action == "member.leave":
        return f"{who} left the organization"
    if action == "member.provision":
        if after.get("linked"):
            return f"{who} took over {after.get('email') or 'someone'}, already a member, for provisioning"
        return f"{who} provisioned {after.get('email') or 'someone'} as {after.get('role')}" + \
            (" (suspended)" if after.get("status") == "suspended" else "")
    if action == "member.scim_update":
        changed = ", ".join(k.replace("_", " ") for k, _, _ in diff(before, after)) or "nothing"
        return f"{who} updated how the identity provider describes {person()} ({changed})"
    if action.startswith("scim_token."):
        verbs = {"scim_token.create": "created SCIM token {n}", "scim_token.rotate": "rotated SCIM token {n}",
                 "scim_token.revoke": "revoked SCIM token {n}"}
        if action in verbs:
            return f"{who} " + verbs[action].format(n=_q(name))
    if action.startswith("scim_group."):
        group = _q(name)
        if action == "scim_group.create":
            members = after.get("members") or []
            return f"{who} created group {group} with {len(members)} member{'' if len(members) == 1 else 's'}"
        if action == "scim_group.delete":
            return f"{who} deleted group {group}"
        if action == "scim_group.update":
            parts = [f"renamed it from {_q(before.get('name'))}"] if before.get("name") != after.get("name") else []
            parts += [f"added {', '.join(after['added'])}"] if after.get("added") else []
            parts += [f"removed {', '.join(after['removed'])}"] if after.get("removed") else []
            return f"{who} changed group {group}" + (f" ({'; '.join(parts)})" if parts else "")
    if action == "member.transfer_ownership":
        return f"{who} transferred ownership to {person()}"
    if action.startswith("invitation."):
        email = after.get("email") or before.get("email") or "someone"
        verbs = {"invitation.create": f"invited {email} as {after.get('role')}",
                 "invitation.resend": f"re-sent the invitation to {email}",
                 "invitation.cancel": f"cancelled the invitation to {email}",
                 "invitation.accept": f"accepted an invitation as {after.get('role')}",
                 "invitation.decline": f"declined the invitation to {email}",
                 "invitation.expired": f"ended the invitation to {email} as expired"}
        return f"{who} {verbs.get(action, action)}"
    if action.startswith("agent.credential_"):
        verb = {"agent.credential_issue": "gave {n} an agent credential",
                "agent.credential_rotate": "rotated the agent credential of {n}",
                "agent.credential_revoke": "revoked the agent credential of {n}"}.get(action, action)
        return f"{who} " + verb.format(n=_q(name))
    if action.startswith("agent_task."):
        task = after or before
        command = str(task.get("command") or "a").replace("_", " ")
        verbs = {"agent_task.queue": f"sent {command} to the agent of {_q(name)}",
                 "agent_task.cancel": f"cancelled a {command} task",
                 "agent_task.claim": f"started a {command} task",
                 "agent_task.result": f"finished a {command} task: {after.get('status')}",
                 "agent_task.expire": f"ended a {command} task as expired"}
        return f"{who} {verbs.get(action, action)}"
    if action == "tenant.create":
        return f"{who} created the organization"
    if action == "tenant.logo":
        return f"{who} {'replaced' if before else 'uploaded'} the organization's logo"
    if action == "tenant.logo_remove":
        return f"{who} removed the organization's logo"
    if action == "tenant.accent":
        if after.get("accent"):
            return f"{who} set the accent colour to {after['accent']}"
        return f"{who} reset the accent colour to the portal's own"
    if action == "audit.export":
        details = row.details or {}
        what = ", ".join(f"{k} {v}" for k, v in (details.get("filter") or {}).items()) or "everything"
        return f"{who} exported the audit log as {details.get('format', 'a file')} ({what})"
    if action == "audit.prune":
        details = row.details or {}
        return f"{who} deleted {details.get('rows')} entries older than {str(details.get('before', ''))[:10]} (retention)"
    if action == "analytics.prune":
        details = row.details or {}
        return (f"{who} deleted {details.get('rows')} analytics events older than "
                f"{str(details.get('before', ''))[:10]} (the plan's retention)")
    if action.startswith("task."):
        title = _q(after.get("title") or before.get("title"))
        if action == "task.status":
            return (f"{who} changed the status of task {title} from {str(before.get('status')).replace('_', ' ')} "
                    f"to {str(after.get('status')).replace('_', ' ')}")
        if action == "task.assign":
            return f"{who} {'assigned' if after.get('assignee_id') else 'unassigned'} task {title}"
        if action == "task.update":
            changed = ", ".join(k.replace("_id", "").replace("_", " ") for k, _, _ in diff(before, after)) or "nothing"
            return f"{who} edited task {title} ({changed})"
        verbs = {"task.create": "created task", "task.comment": "commented on task"}
        at = f" at {site(after)}" if action == "task.create" and after.get("site_id") else ""
        return f"{who} {verbs.get(action, action)} {title}{at}"
    if action == "audit.retention":
        return f"{who} set audit retention to {after.get('retention_days')} days"
    if action.startswith("role."):
        return f"{who} {_role(action, before, after)}"
    if action.startswith("api_client."):
        verbs = {"api_client.create": "created API client {n}", "api_client.rotate": "rotated the secret of API client {n}",
                 "api_client.disable": "disabled API client {n}", "api_client.enable": "enabled API client {n}",
                 "api_client.delete": "deleted API client {n}"}
        if action in verbs:
            return f"{who} " + verbs[action].format(n=_q(name))
    if action.startswith("sso."):
        said = _sso(action, row.details if isinstance(row.details, dict) else {}, before, after, person)
        if said:
            return f"{who} {said}"
    if action.startswith("integration."):
        verbs = {"integration.create": "created the integration {n}", "integration.update": "edited the integration {n}",
                 "integration.credentials": "replaced the credentials of the integration {n}",
                 "integration.enable": "enabled the integration {n}", "integration.disable": "disabled the integration {n}",
                 "integration.delete": "deleted the integration {n}", "integration.sync": "asked for a sync of {n}",
                 "integration.test": "sent a test event to {n}",
                 "integration.replay": "replayed a failed delivery to {n}",
                 "integration.breaker": "disabled the integration {n} after {f} failed deliveries in a row"}
        if action in verbs:
            n = _q(after.get("name") or before.get("name") or name)
            return f"{who} " + verbs[action].format(n=n, f=after.get("failures", "many"))
    if action == "keys.rotate":
        return f"{who} started rotating the organization's encryption key (to version {after.get('version')})"
    if action == "keys.rotated":
        return (f"{who} finished rotating the organization's encryption key: {after.get('resealed', 0)} "
                f"secret(s) re-encrypted with version {after.get('version')}, the old key destroyed")
    if action.startswith("oauth_app."):
        verb = {"oauth_app.create": "registered OAuth app {n}", "oauth_app.delete": "deleted OAuth app {n}"}.get(action)
        if verb:
            return f"{who} " + verb.format(n=_q(name))
    if action.startswith("oauth_grant."):
        snap = after or before
        app = _q(snap.get("app") or "an app")
        if action == "oauth_grant.create":
            return f"{who} allowed {app} to act for them ({', '.join(snap.get('scopes') or []) or 'no scopes'})"
        if action == "oauth_grant.update":
            return f"{who} changed what {app} may do for them ({', '.join(snap.get('scopes') or []) or 'no scopes'})"
        if action == "oauth_grant.revoke":
            details = row.details if isinstance(row.details, dict) else {}
            why = GRANT_END_REASONS.get(str(details.get("reason")), "revoked")
            whose = names.users.get(str(snap.get("user_id"))) or "someone"
            return f"{who} ended the access of {app} for {whose} ({why})"
    if action.startswith("tenant."):
        said = _tenant(action, before, after)
        if said:
            return f"{who} {said}"
    if action in ("user.enable", "user.disable", "user.suspend", "user.reactivate"):
        verb = {"user.enable": "re-enabled", "user.disable": "disabled", "user.suspend": "suspended",
                "user.reactivate": "reactivated"}[action]
        why = f": {after['reason']}" if action == "user.suspend" and after.get("reason") else ""
        return f"{who} {verb} the account of {after.get('email') or 'someone'} (system console){why}"
    # A kind of row this page does not know yet: still words, never an id.
    what = action.replace(".", " ").replace("_", " ")
    kind = str(row.resource_type or "item").replace("_", " ")
    return f"{who}: {what} ({kind}{' ' + _q(name) if name else ''})"


def _sso(action: str, details: dict, before: dict, after: dict, person) -> str | None:
    """Organizations' single sign-on (portal/sso)."""
    name = _q(after.get("name") or before.get("name"))
    domain = after.get("domain") or before.get("domain") or details.get("domain") or "a domain"
    group = _q(after.get("group") or before.get("group"))
    verbs = {
        "sso.connection_create": f"added the single sign-on connection {name}",
        "sso.connection_update": f"changed the single sign-on connection {name}"
                                 + (" (new client secret)" if details.get("secret_replaced") else ""),
        "sso.connection_enable": f"enabled the single sign-on connection {name}",
        "sso.connection_disable": f"disabled the single sign-on connection {name}",
        "sso.connection_delete": f"deleted the single sign-on connection {name}",
        "sso.domain_claim": f"claimed the domain {domain}",
        "sso.domain_verify": f"verified the domain {domain}",
        "sso.domain_lost": f"found the DNS record of {domain} gone: it is no longer verified",
        "sso.domain_delete": f"removed the domain {domain}",
        "sso.domain_require": (f"required single sign-on for {domain}" if after.get("require_sso")
                               else f"stopped requiring single sign-on for {domain}"),
        "sso.mapping_create": f"mapped the group {group} to {after.get('role')}"
                              + (f" with sites {', '.join(after['sites'])}" if after.get("sites") else ""),
        "sso.mapping_delete": f"deleted the mapping of the group {group}",
        "sso.jit_join": f"added {after.get('email') or person()} as {after.get('role')} at their first sign-in",
        "sso.sites_follow": f"changed the sites of {person()} to follow their groups: "
                            f"{', '.join(after.get('sites') or []) or 'none'}",
        "sso.break_glass": f"signed in with a password although {domain} requires single sign-on (break-glass)",
    }
    return verbs.get(action)


def _permission_names(values) -> str:
    from ..tenancy import Permission
    out = []
    for value in values or []:
        try:
            out.append(Permission(value).description.lower())
        except ValueError:
            out.append(str(value))
    return "; ".join(out)


def _role(action: str, before: dict, after: dict) -> str:
    """Custom roles: created, edited (what it may do now), deleted (where its members went)."""
    if action == "role.create":
        granted = len(after.get("permissions") or [])
        return f"created role {_q(after.get('name'))} with {granted} permission{'' if granted == 1 else 's'}"
    if action == "role.update":
        parts = []
        if before.get("name") != after.get("name"):
            parts.append(f"renamed it from {_q(before.get('name'))}")
        if before.get("description") != after.get("description"):
            parts.append("changed its description")
        old, new = set(before.get("permissions") or []), set(after.get("permissions") or [])
        if new - old:
            parts.append("granted: " + _permission_names(sorted(new - old)))
        if old - new:
            parts.append("withdrew: " + _permission_names(sorted(old - new)))
        return f"edited role {_q(after.get('name'))}" + (f" ({'; '.join(parts)})" if parts else "")
    if action == "role.delete":
        moved = after.get("moved_to") or {}
        members = after.get("members") or 0
        said = f"deleted role {_q(before.get('name'))}"
        if members:
            said += (f"; its {members} member{'' if members == 1 else 's'} now "
                     f"{'has' if members == 1 else 'have'} the role {moved.get('role') or 'of the fallback'}")
        return said
    return f"changed role {_q(after.get('name') or before.get('name'))}"


TENANT_FIELDS = {"contact_email": "contact email", "max_users": "user limit", "max_sites": "site limit",
                 "max_devices": "device limit", "max_integrations": "integration limit", "max_api_clients": "API client limit",
                 "features": "features",
                 "require_mfa": "two-factor requirement", "mfa_grace_days": "two-factor grace period",
                 "idle_timeout_minutes": "idle timeout", "absolute_timeout_hours": "session length",
                 "max_sessions": "session limit", "ip_allowlist": "allowed networks",
                 "share_member_signins": "sharing of sign-ins", "mfa_required_since": None}


def _changed(before: dict, after: dict) -> str:
    fields = [TENANT_FIELDS.get(k, k.replace("_", " ")) for k, _, _ in diff(before, after)]
    return ", ".join(f for f in fields if f) or "nothing"


def _tenant(action: str, before: dict, after: dict) -> str | None:
    if action == "tenant.update":
        return f"edited the organization's profile ({_changed(before, after)})"
    if action == "tenant.security_policy":
        return f"changed the security policy ({_changed(before, after)})"
    if action == "tenant.features":
        return (f"set the features on top of the plan to {', '.join(after.get('features') or []) or 'none'} "
                "(system console)")
    if action == "tenant.plan":
        if before.get("plan") != after.get("plan"):
            return f"changed the plan from {before.get('plan')} to {after.get('plan')} (system console)"
        return f"changed the plan's limits ({_changed(before, after)}) (system console)"
    return {"tenant.onboarding_dismiss": "dismissed the getting-started checklist",
            "tenant.export": "asked for an export of all the organization's data",
            "tenant.export_download": "downloaded the organization's data export",
            "tenant.delete_request": "asked for the organization to be deleted"
                                     + (f" (purged after {str(after.get('purge_after'))[:10]})"
                                        if after.get("purge_after") else ""),
            "tenant.delete_cancel": "cancelled the organization's deletion"}.get(action)


def diff(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for each top-level field that differs."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    keys = list(dict.fromkeys([*before.keys(), *after.keys()]))
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def link(row, names: Names, url_for, may_manage_invitations: bool) -> str | None:
    """The resource's page when it still exists."""
    rid = str(row.resource_id or "")
    if row.resource_type == "device" and rid in names.devices:
        return url_for("devices.show", device_id=rid)
    if row.resource_type == "site" and rid in names.sites:
        return url_for("sites.show", site_id=rid)
    if row.resource_type == "site_assignment":
        sid = str((row.after or row.before or {}).get("site_id") or "")
        return url_for("sites.show", site_id=sid) if sid in names.sites else None
    if row.resource_type == "membership" and rid in names.users:
        return url_for("members.index", q=names.users[rid])
    if row.resource_type == "task" and rid:
        return url_for("tasks.show", task_id=rid)  # tasks are never deleted (but with their tenant)
    if row.resource_type == "invitation" and may_manage_invitations:
        return url_for("invitations.index")
    return None
