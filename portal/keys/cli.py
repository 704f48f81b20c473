"""`flask keys ...`: what the keys protect, and their rotation (docs/operations.md, Rotating keys)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

keys_cli = AppGroup("keys", help="The keyring: master keys and data keys.")
