"""The console entry point: ``--version`` answers before the pipeline is loaded.

Loading the CLI imports every stage (requests, the solver, the OCI library: about a second on a busy machine);
scripts and CI steps that only ask for the version should not pay for it.
"""

from __future__ import annotations

import sys
from typing import Sequence

from . import __version__


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"oci-conda {__version__}")
        return 0
    from .cli import main as cli_main  # deferred on purpose: see the module docstring

    return cli_main(args)
