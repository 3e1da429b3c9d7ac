"""The console entry point: ``--version`` answers before the pipeline is loaded.

Loading the CLI imports every stage (the solver, the OCI library, ~0.2 s); scripts and CI steps that only ask for the
version should not pay for it.

The garbage collector is told that what the imports and the command made is there for the rest of the process: it
stays off while the modules load (every object they make lives until exit, so collecting then only costs time), and
the objects alive after the import and after the command are frozen (``gc.freeze``), so later collections and the
one at interpreter exit do not walk them again. Together ~10 % of a no-op rebuild.
"""

from __future__ import annotations

import gc
import sys
from typing import Sequence

from . import __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"oci-conda {__version__}")
        return 0
    gc.disable()
    try:
        from .cli import main as cli_main  # deferred on purpose: see the module docstring
    finally:
        gc.enable()
    gc.freeze()
    code = cli_main(args)
    if argv is None:  # the process ends now (console script, python -m): its exit need not walk these either
        gc.freeze()
    return code
