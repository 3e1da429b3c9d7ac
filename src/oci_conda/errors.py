"""User-facing errors.

Every failure a user can cause or fix (bad input, unreachable channel, checksum mismatch, ...) is raised as an
``OciCondaError`` subclass with a one-line message naming the file, line or package. The CLI prints that line and
exits non-zero; anything else is a bug and shows a traceback.
"""

from __future__ import annotations


class OciCondaError(Exception):
    """A failure the user can act on; its message is one line."""

    exit_code: int = 2


class SpecError(OciCondaError):
    """environment.yml or a command-line option is invalid."""


class ChannelError(OciCondaError):
    """A channel is unknown, unreachable or serves bad repodata."""


class SolveError(OciCondaError):
    """The request cannot be satisfied."""

    exit_code = 1


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
