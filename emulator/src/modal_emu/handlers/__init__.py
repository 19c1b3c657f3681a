"""RPC handlers, grouped by the kind of object they act on. Importing registers them."""

from . import apps, blobs, functions, images, misc, mounts, volumes  # noqa: F401
