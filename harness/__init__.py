"""Mesh resilience harness: an Istio mesh, Locust load, chaos and Prometheus SLO verdicts."""
