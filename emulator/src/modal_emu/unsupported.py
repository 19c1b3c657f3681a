"""Features the emulator leaves out: the client gets UNIMPLEMENTED with a message that names
the feature (not just the RPC), at once, so a program fails clearly instead of hanging."""

from __future__ import annotations

from grpclib import GRPCError, Status

# RPC name prefix -> the feature a user would recognise; the longest matching prefix wins.
FEATURES = {
    "Sandbox": "Sandboxes (modal.Sandbox)",
    "PersistentSandbox": "Sandboxes (modal.Sandbox)",
    "AuthTokenGet": "Sandboxes (modal.Sandbox)",  # the first RPC of Sandbox.create
    "Tunnel": "tunnels (modal.forward)",
    "Webhook": "web endpoints",
    "Endpoint": "web endpoints",
    "Flash": "web servers (modal.experimental.flash)",
    "SharedVolume": "Network File Systems (modal.NetworkFileSystem)",
    "Proxy": "proxies (modal.Proxy)",
    "Cluster": "clustered functions (@modal.experimental.clustered)",
    "ContainerExec": "modal shell / modal container exec",
}


def feature(rpc_name: str) -> str | None:
    """The left-out feature an RPC belongs to, or None."""
    prefix = max((p for p in FEATURES if rpc_name.startswith(p)), key=len, default="")
    return FEATURES[prefix] if prefix else None


def message(rpc_name: str) -> str:
    if (name := feature(rpc_name)) is None:
        return f"the local Modal emulator does not implement {rpc_name}"
    return f"the local Modal emulator does not support {name} ({rpc_name})"


def unimplemented(feature: str) -> GRPCError:
    return GRPCError(Status.UNIMPLEMENTED, f"the local Modal emulator does not support {feature}")
