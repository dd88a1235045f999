"""The mesh: Istio and Kubernetes resources, their validation and their translation to Envoy."""
