"""``serve``: many camera rigs, one engine, run as a service (an HTTP API, metrics, recordings).

``config`` reads and validates the rigs file; ``rig`` runs one rig's cameras, pairing and outputs;
``service`` owns the engine and the loop that batches all rigs' frames into its calls; ``api`` is
the HTTP side (rigs, ``/metrics``, health, previews), bound to loopback unless a token guards it.
"""
