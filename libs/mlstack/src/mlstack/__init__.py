"""mlstack: the shared ML stack behind every project in this monorepo.

Subpackages are imported on demand so that a serving process never pays for torch or MLflow:
`mlstack.serve` and `mlstack.monitor` need only FastAPI, ONNX Runtime and prometheus-client;
`mlstack.train`, `mlstack.export` and `mlstack.quantize` import torch/MLflow when called.
"""

__version__ = "0.1.0"
