"""A daemonless OCI distribution-spec client: ``client`` (transport, retries, errors), ``auth`` (credentials bound
to one registry), ``reference``, ``pull``, ``push`` and ``login``. Import the module you need."""
