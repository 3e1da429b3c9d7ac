"""oci-conda: daemonless, reproducible OCI images from conda environments."""

__version__ = "0.1.0"
