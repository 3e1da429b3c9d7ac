"""A general OCI image library (knows nothing of conda), shaped after go-containerregistry's ``pkg/v1``.

``image`` (the model and its mutations), ``walk`` (the one index/manifest walk over any blob source), ``memory``
(built images as a source: the one manifest/index plan), ``layout`` / ``archive`` / ``registry`` (each a source and
a sink), ``local`` (a path as a source), ``source`` (a base reference to an image), ``output`` (images to disk),
``tar`` and ``blobs`` (deterministic tar streams; content-addressed blobs).
"""
