"""Environments: a key belongs to `production` (the default) or `staging`.

Staging traffic gets the staging configuration (services/configs.py); tickets keep the
environment of the key that submitted them, so that their drafts do too.
"""

from enum import StrEnum


class Environment(StrEnum):
    production = "production"
    staging = "staging"


DEFAULT_ENVIRONMENT = Environment.production
