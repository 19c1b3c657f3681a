"""RPC handlers, grouped by the kind of object they act on. Importing registers them."""

from . import apps, blobs, classes, dicts, functions, images, misc, mounts, queues, volumes  # noqa: F401
