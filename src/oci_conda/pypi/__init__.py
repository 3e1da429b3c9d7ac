"""PyPI wheels for the image, after conda: parse a ``pip:`` section, resolve wheels for the *target* (tags from the
platform and the solved conda python; conda's Python distributions count as installed), fetch and verify them, and
install each at a staging prefix as pip would.

Knows nothing of OCI. Modules, top to bottom: ``requirements`` (syntax) -> ``target`` (tags, markers) ->
``resolve`` (the host's pip, dry-run, for the target) -> ``fetch`` (cache by sha256) -> ``install`` (schemes, RECORD,
entry points). ``records`` holds the data that crosses stages; ``hosts`` the per-host index credentials;
``installed`` turns conda's Python distributions into what pip must treat as installed.
"""
