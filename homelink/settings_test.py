"""Settings for the test suite: production's, with the development conveniences switched on.

The tests read links and codes from the local outbox and run without a real ``SECRET_KEY``,
which production refuses unless ``HOMELINK_DEV=1`` (homelink/settings.py). Setting it in the
environment, not only here, lets the workers and commands the tests start inherit it.
"""

import os

os.environ.setdefault("HOMELINK_DEV", "1")

from homelink.settings import *  # noqa: F403
