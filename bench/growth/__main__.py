"""``python -m bench.growth``: start-up and worker memory by document size, alone."""

from bench.growth.run import main

raise SystemExit(main())
