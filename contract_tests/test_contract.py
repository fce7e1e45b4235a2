"""The contract suite on SQLite, in-process (``make test``) or against a live server
(``make contract BASE_URL=... TOKEN=...``). The tests are in ``suite.py``."""

from contract_tests.suite import *  # noqa: F403  (the tests)

BACKEND = "sqlite"
