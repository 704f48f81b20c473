"""The signed-in user's own account: /account (registered by portal.accounts)."""
