"""Identity: users, password hashing, finding and creating accounts.

The layer under everything that knows who someone is: it imports no other area. Sessions,
second factors and account changes are portal.security; the sign-in pages portal.signin;
the signed-in user's own page portal.profile."""
