"""The ``twin`` command line: the application layer.

The only code that imports both :mod:`experiments` and :mod:`viz` (the import
contracts in ``pyproject.toml`` keep it so).  :mod:`twin.cli.app` builds the parser
and runs a command; each other module adds sub-commands (``add_commands(sub)``,
listed in :data:`twin.cli.app.COMMAND_MODULES`); :mod:`twin.cli.common` holds what
they share (KPI tables, where results go).
"""

from __future__ import annotations

from twin.cli.app import main

__all__ = ["main"]
