"""User-facing errors.

Every failure a user can cause or fix (bad input, unreachable channel, checksum mismatch, ...) is raised as an
``OciCondaError`` subclass with a one-line message naming the file, line or package. The CLI prints that line and
exits non-zero; anything else is a bug and shows a traceback.

Exit codes (the CLI maps error classes to them in one table, ``cli.EXIT_CODES``; README lists them):
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: an exception that is not an OciCondaError (traceback shown)
EXIT_USAGE = 2  # bad command line, environment file, lock, package, image or output path
EXIT_UNSATISFIABLE = 3  # the environment cannot be solved
EXIT_NETWORK = 4  # a channel, download or registry failed (unreachable, HTTP error, bad remote data, auth)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class OciCondaError(Exception):
    """A failure the user can act on; its message is one line."""


class SpecError(OciCondaError):
    """environment.yml or a command-line option is invalid."""


class ChannelError(OciCondaError):
    """A channel is unknown, unreachable or serves bad repodata."""


class SolveError(OciCondaError):
    """The request cannot be satisfied."""


class FetchError(OciCondaError):
    """A package could not be downloaded or failed verification."""


class PackageError(OciCondaError):
    """A package archive is corrupt or hostile."""


class InstallError(OciCondaError):
    """A package cannot be laid out in the prefix."""


class ImageError(OciCondaError):
    """An OCI image, layout or base reference is invalid."""


class OutputError(OciCondaError):
    """The output cannot be written."""
