"""``python -m wce_xp`` is the ``wce-xp`` command."""

from ._launch import main

raise SystemExit(main())
