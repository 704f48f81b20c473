"""The person's own profile: names, avatar, locale. They flush, never commit."""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from .. import images
from ..accounts import lifecycle
from ..accounts.models import User, UserAvatar
from ..database.loaded import mapped
from ..extensions import db
from ..rules import RuleViolation
from ..security import events

AVATAR_MAX_BYTES = 2_000_000
AVATAR_MAX_SIDE = 4096  # what is accepted; what is kept is SIDE x SIDE
AVATAR_SIDE = 256


@dataclass(frozen=True)
class Avatar:
    content: bytes
    media_type: str
    side: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def set_names(user: User, given: str, family: str) -> bool:
    """Given and family names; the display name follows. False when nothing changed."""
    user = mapped(user)
    given, family = " ".join(given.split()), " ".join(family.split())
    if not given and not family:
        raise RuleViolation("Give at least one name.", field="given_name")
    if (user.given_name, user.family_name) == (given, family) and user.name == lifecycle.join_name(given, family):
        return False
    before = user.name
    user.given_name, user.family_name, user.name = given, family, lifecycle.join_name(given, family)
    events.security("profile.name", user, before=before, after=user.name)
    return True


def set_locale(user: User, locale: str | None) -> None:
    if locale and locale not in lifecycle.LOCALES:
        raise RuleViolation("Choose one of the listed languages and regions.", field="locale")
    mapped(user).locale = locale or None


def decode_avatar(data: bytes, filename: str | None) -> Avatar:
    """Check an upload by decoding it (as the organization logo is) and keep a square WebP of
    AVATAR_SIDE pixels cut from its middle: small to serve, with nothing of the upload's bytes."""
    image, kind = images.open_checked(data, filename, max_bytes=AVATAR_MAX_BYTES, max_side=AVATAR_MAX_SIDE,
                                      noun="a profile picture", field="avatar")
    clean = images.clean_copy(ImageOps.exif_transpose(image) or image, kind)
    square = ImageOps.fit(clean, (AVATAR_SIDE, AVATAR_SIDE), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, "WEBP", quality=85)
    return Avatar(out.getvalue(), "image/webp", AVATAR_SIDE)


def set_avatar(user: User, avatar: Avatar) -> None:
    row = db.session.get(UserAvatar, user.id)
    if row is None:
        row = UserAvatar(user_id=user.id)
        db.session.add(row)
    row.content, row.media_type, row.sha256 = avatar.content, avatar.media_type, avatar.sha256
    row.width = row.height = avatar.side
    row.updated_at = db.func.now()
    mapped(user).avatar_version = avatar.sha256[:16]
    events.security("profile.avatar", user, sha256=avatar.sha256)


def remove_avatar(user: User) -> bool:
    row = db.session.get(UserAvatar, user.id)
    if row is None:
        return False
    db.session.delete(row)
    mapped(user).avatar_version = None
    events.security("profile.avatar", user, removed=True)
    return True


def avatar_of(user_id) -> UserAvatar | None:
    return db.session.get(UserAvatar, user_id)
