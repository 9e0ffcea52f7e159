"""The Hydra applications behind the console scripts (configs from ``emmkgr_pyg.conf``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import NoReturn

from ..data.dataset import DataError
from ..utils import ConfigError

CONFIG_PATH = "pkg://emmkgr_pyg.conf"

#: Errors whose message names the file, the field and the fix: a command prints it alone.
USER_ERRORS: tuple[type[Exception], ...] = (DataError, ConfigError, FileNotFoundError)


def fail(prog: str, error: Exception) -> NoReturn:
    """Print ``error`` as one line ``<prog>: <message>`` on stderr and exit with status 2."""
    print(f"{prog}: {' '.join(str(error).split())}", file=sys.stderr)
    sys.exit(2)


@contextlib.contextmanager
def exit_on_user_error(prog: str, *errors: type[Exception]) -> Iterator[None]:
    """:func:`fail` on a :data:`USER_ERRORS` (or ``errors``) exception instead of a stack trace;
    anything else propagates."""
    try:
        yield
    except (*USER_ERRORS, *errors) as e:
        fail(prog, e)
