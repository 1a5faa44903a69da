"""``python -m gateway.cli``: the ``dsgo`` command (the demo starts its processes so)."""

from gateway.cli import main

raise SystemExit(main())
