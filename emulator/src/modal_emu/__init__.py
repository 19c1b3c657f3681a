"""A local emulator of Modal's gRPC API."""
