from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db


class JobError(db.Model):
    """The last error of a job (procrastinate keeps only its status), written by the worker and
    shown on /admin/jobs. Global: jobs carry ids, not tenant data."""

    __tablename__ = "job_errors"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    attempt: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
