"""`python -m infra COMMAND ...`: the project's offline tools (see `python -m infra --help`)."""

from infra.tools.cli import main

raise SystemExit(main())
