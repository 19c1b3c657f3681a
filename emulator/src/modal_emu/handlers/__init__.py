"""RPC handlers, grouped by the kind of object they act on. Importing registers them."""

from . import (  # noqa: F401
    apps,
    billing,
    blobs,
    classes,
    dicts,
    functions,
    generators,
    images,
    misc,
    mounts,
    queues,
    tasks,
    volumefiles,
    volumes,
)
