"""``Fuser``, the runtime users embed, above the backend registry; the timing loop behind ``bench``
and the file jobs ``fuse`` runs (images, folders, videos) sit on it."""
