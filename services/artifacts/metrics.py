"""The artifacts service's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter


class ArtifactMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.bytes_streamed = Counter("ftlab_artifact_streamed_bytes", "Archive bytes sent by DownloadArtifact.",
                                      registry=registry)
        self.bytes_uploaded = Counter("ftlab_dataset_uploaded_bytes", "Dataset bytes received by UploadDataset.",
                                      registry=registry)

    def streamed(self, n: int) -> None:
        self.bytes_streamed.inc(n)
