"""The command line's one error shape: an expected error (bad input, not a bug) is one line
`error: ...` naming the file or key and the rule, on stderr, with exit status 2.

    except cli.InputError as e:       # ConfigError, DataError, LineageError, ModelError
        return cli.fail(e)

A lowest-floor module (it imports nothing of the pipeline), so every CLI can use it. The Hydra entry
points' front door (`--help`, the config checked before Hydra runs) is `pipeline.config.compose.hydra_entry`.
"""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad input, not a bug (a config value, a data file, a lineage's state, a model spec): an entry
    point catches it and prints it with `fail`. The layers' own errors subclass it (ConfigError,
    DataError, LineageError, ModelError), so an entry point names none of those packages."""


def fail(e: BaseException | str) -> int:
    """Print the one-line error and return the exit status for it."""
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return EXIT_BAD_INPUT
