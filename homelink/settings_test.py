"""Settings for the test suite: production's, with the development conveniences switched on.

The tests read links and codes from the local outbox and run without a real ``SECRET_KEY``,
which production refuses unless ``HOMELINK_DEV=1`` (homelink/settings.py). Setting it in the
environment, not only here, lets the workers and commands the tests start inherit it.
"""

import os

os.environ.setdefault("HOMELINK_DEV", "1")
# The first-contact privacy notice would add a message before every first send; the tests of
# other features count only their own copies. homelink/privacy/tests turn it on.
os.environ.setdefault("HOMELINK_FIRST_CONTACT_NOTICE", "0")

from homelink.settings import *  # noqa: F403
