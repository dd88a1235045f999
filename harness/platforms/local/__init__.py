"""The local platform: the mesh as real processes on 127.0.0.1, no Docker."""
