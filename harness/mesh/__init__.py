"""The mesh: Istio and Kubernetes resources, their validation and their translation to Envoy."""

# The public surface, imported on first use: validation (jsonschema, kubernetes-validate) is slow to
# import and a process that only translates (the local daemon) never needs it.

import importlib

__all__ = ["MANIFESTS_DIR", "MeshModel", "declared_model", "default_manifest_paths", "load_documents",
           "load_yaml_documents", "validate_document"]

_HOMES = {"MANIFESTS_DIR": "harness.mesh.schema", "MeshModel": "harness.mesh.loader",
          "declared_model": "harness.mesh.loader", "default_manifest_paths": "harness.mesh.schema",
          "load_documents": "harness.mesh.loader", "load_yaml_documents": "harness.mesh.schema",
          "validate_document": "harness.mesh.schema"}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'harness.mesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
