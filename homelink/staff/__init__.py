"""School staff: who works for which school in which role (memberships, invitations), who did
what (:mod:`~homelink.staff.actor`), their second factor and their short sessions.

Beneath the screens: the console, the parents' side and delivery all import from here, and
nothing here imports the console (homelink/tests/test_dependencies.py)."""
