"""The one exception services raise when a business rule refuses a change."""


class RuleViolation(Exception):
    """A change the rules refuse; the message is written for the user who asked."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field
