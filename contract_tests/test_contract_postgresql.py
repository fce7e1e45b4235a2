"""The contract suite on PostgreSQL (when ``GANTRY_TEST_DATABASE_URL`` is set; CI sets it).
An unreachable server fails the run. The tests are in ``suite.py``."""

from contract_tests.suite import *  # noqa: F403  (the tests)

BACKEND = "postgresql"
