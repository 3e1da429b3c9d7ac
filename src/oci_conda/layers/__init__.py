"""Between the package managers and OCI: a packed prefix becomes the entries of reproducible layers.

``pack`` (conda-pack a staged prefix into tar entries), ``trim`` (drop what no program uses), ``pyc`` (byte-compile
site-packages), ``plan`` (the layering rule: which entries go into which layer).
"""
