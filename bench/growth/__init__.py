"""Start-up time and worker memory as the document grows: today's spec against a synthetic
document of 500 operations and 1,000 schemas, both served by the real runtime (``run``)."""
