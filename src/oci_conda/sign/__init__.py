"""Image signatures in two formats: cosign's key-based format (``keys``, ``cosign``) and containers "simple
signing" with OpenPGP (``simple``). Both sign the same kind of payload (``payload``)."""
