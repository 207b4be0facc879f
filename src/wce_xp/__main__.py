"""``python -m wce_xp`` is the ``wce-xp`` command."""

from .cli import main

raise SystemExit(main())
