"""`python -m tui_captioner` runs the same entry point as the console script."""

from tui_captioner.cli import main

raise SystemExit(main())
