"""Archives: many IR/visible pairs and videos, fused in one process or on a Ray cluster.

Items are found by matching relative paths (``items``), run through the same jobs as ``fuse``
(``job``), one by one here or spread over Ray Data actors that each hold one ``Fuser``
(``ray_runner``). A bad item is recorded and skipped; outputs are atomic, so ``resume`` skips what
exists.
"""
