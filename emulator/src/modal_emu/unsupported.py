"""Features the emulator leaves out: the client gets UNIMPLEMENTED with a message that names
the feature (not just the RPC), at once, so a program fails clearly instead of hanging."""

from __future__ import annotations

from grpclib import GRPCError, Status
from modal_proto import api_pb2

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


def message(rpc_name: str) -> str:
    prefix = max((p for p in FEATURES if rpc_name.startswith(p)), key=len, default="")
    if not prefix:
        return f"the local Modal emulator does not implement {rpc_name}"
    return f"the local Modal emulator does not support {FEATURES[prefix]} ({rpc_name})"


def unimplemented(feature: str) -> GRPCError:
    return GRPCError(Status.UNIMPLEMENTED, f"the local Modal emulator does not support {feature}")


def check_definition(definition: api_pb2.Function) -> None:
    """Refuse, at deploy time, a function the emulator could not serve as defined."""
    where = f"function '{definition.function_name}'"
    webhooks = [definition.webhook_config] + [m.webhook_config for m in definition.method_definitions.values()]
    if any(w.type != api_pb2.WEBHOOK_TYPE_UNSPECIFIED for w in webhooks):
        raise unimplemented(
            f"web endpoints (@modal.fastapi_endpoint, @modal.asgi_app, @modal.wsgi_app, @modal.web_server) in {where}"
        )
    if definition.is_server:
        raise unimplemented(f"modal.Server in {where}")
