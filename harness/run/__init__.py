"""Running experiments: Chaos Toolkit drives them, the harness adds load, phases, SLOs and the verdict."""
