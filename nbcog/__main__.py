"""``python -m nbcog``: see ``nbcog.cli``."""

from nbcog.cli import main

raise SystemExit(main())
