"""The load benchmark's second server (:mod:`homelink.bench.load`): production's settings with a
cheap password hasher, to show what sign-in costs apart from hashing the password. For the
benchmark only: never a deployment's settings."""

from django.core.exceptions import ImproperlyConfigured

from homelink.settings import *  # noqa: F403
from homelink.settings import HOMELINK_DEV

if not HOMELINK_DEV:
    # A weak hasher where real passwords are kept would be a disaster: only with the
    # development conveniences on (the benchmark's throw-away database).
    raise ImproperlyConfigured("homelink.bench.settings_md5 is for the benchmark only")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
