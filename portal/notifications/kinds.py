"""The notification kinds: what each says, how it reaches people by default, and which ones
cannot be turned off (security)."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Channel(enum.StrEnum):
    PORTAL = "portal"   # the bell only
    EMAIL = "email"     # an email at once, nothing in the bell
    BOTH = "both"       # the bell and an email at once
    DIGEST = "digest"   # the bell, and one email a day with the day's unread ones
    NONE = "none"


CHANNEL_LABELS = {Channel.BOTH: "In the portal and by email", Channel.PORTAL: "In the portal only",
                  Channel.EMAIL: "By email only", Channel.DIGEST: "In the portal and a daily email digest",
                  Channel.NONE: "Off"}
# portal_notify (migration 0012) applies them: a row for portal/both/digest, an email at once for
# email/both, nothing for none; the digest job emails the day's unread rows of digest kinds.


class Kind(enum.StrEnum):
    TASK_ASSIGNED = "task_assigned"
    TASK_COMMENTED = "task_commented"
    TASK_DUE_TOMORROW = "task_due_tomorrow"
    TASK_OVERDUE = "task_overdue"
    TASK_COMPLETED = "task_completed"
    ROLE_CHANGED = "role_changed"
    SITE_ASSIGNED = "site_assigned"
    SITE_UNASSIGNED = "site_unassigned"
    INVITATION_ACCEPTED = "invitation_accepted"
    INVITATION_UNDELIVERED = "invitation_undelivered"
    DEVICE_ERROR = "device_error"
    SIGNIN_NEW_BROWSER = "signin_new_browser"
    SSO_DOMAIN_LOST = "sso_domain_lost"

    @classmethod
    def _missing_(cls, value):
        # portal/tasks/events.py names the task kinds "task.assigned", ...: the same kinds.
        if isinstance(value, str) and "." in value:
            return cls.__members__.get(value.replace(".", "_").upper())
        return None


@dataclass(frozen=True)
class KindInfo:
    label: str          # on /account, and the unsubscribe page
    message: str        # str.format with the notification's params (missing ones show as "?")
    default: Channel
    security: bool = False  # always sent on its default channel; cannot be changed or unsubscribed
    quote: str | None = None  # the param an email quotes under the message (a comment's text)


CATALOGUE: dict[Kind, KindInfo] = {
    # Task params as portal/tasks/events.py sends them: title, tenant, actor, due_on, excerpt, days_late.
    Kind.TASK_ASSIGNED: KindInfo("A task is assigned to you", "{actor} assigned you the task “{title}” in {tenant}",
                                 Channel.BOTH),
    Kind.TASK_COMMENTED: KindInfo("A task of yours gets a comment", "{actor} commented on “{title}” in {tenant}",
                                  Channel.PORTAL, quote="excerpt"),
    Kind.TASK_DUE_TOMORROW: KindInfo("A task of yours is due tomorrow", "“{title}” in {tenant} is due tomorrow",
                                     Channel.BOTH),
    Kind.TASK_OVERDUE: KindInfo("A task of yours is overdue", "“{title}” in {tenant} is overdue (due {due_on})",
                                Channel.BOTH),
    Kind.TASK_COMPLETED: KindInfo("A task you created is done", "{actor} completed “{title}” in {tenant}",
                                  Channel.PORTAL),
    Kind.ROLE_CHANGED: KindInfo("Your role changes", "{actor} changed your role in {tenant} from {before} to {after}",
                                Channel.BOTH),
    Kind.SITE_ASSIGNED: KindInfo("You are assigned to a site", "{actor} gave you access to the site {site} in {tenant}",
                                 Channel.PORTAL),
    Kind.SITE_UNASSIGNED: KindInfo("You are removed from a site",
                                   "{actor} removed your access to the site {site} in {tenant}", Channel.PORTAL),
    Kind.INVITATION_ACCEPTED: KindInfo("Someone accepts your invitation",
                                       "{invitee} accepted your invitation to {tenant}", Channel.PORTAL),
    Kind.INVITATION_UNDELIVERED: KindInfo("An invitation you sent cannot be delivered",
                                          "Your invitation of {email} to {tenant} was not delivered: {reason}",
                                          Channel.BOTH),
    Kind.DEVICE_ERROR: KindInfo("A device at your sites reports an error",
                                "{device} at {site} ({tenant}) went to error", Channel.BOTH),
    Kind.SIGNIN_NEW_BROWSER: KindInfo("Sign-in from a new browser",
                                      "New sign-in to your account from {browser} ({ip})", Channel.EMAIL,
                                      security=True),
    Kind.SSO_DOMAIN_LOST: KindInfo("A verified domain of your organization loses its DNS record",
                                   "{domain} is no longer verified for {tenant}: its DNS record {record} is gone",
                                   Channel.BOTH, security=True),
}


class _Missing(dict):
    def __missing__(self, key):
        return "?"


def message(kind: str, params: dict) -> str:
    info = CATALOGUE.get(kind)  # type: ignore[call-overload]
    if info is None:
        return kind.replace("_", " ")
    return info.message.format_map(_Missing({k: v for k, v in (params or {}).items()}))


def label(kind: str) -> str:
    info = CATALOGUE.get(kind)  # type: ignore[call-overload]
    return info.label if info else kind.replace("_", " ")


DIGEST_LABEL = "The daily digest email"
