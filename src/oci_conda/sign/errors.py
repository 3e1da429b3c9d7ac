"""The one error type of signing and verification."""

from __future__ import annotations

from ..errors import OciCondaError


class SignError(OciCondaError):
    """A key, passphrase or signature is missing, wrong or does not match the image."""
