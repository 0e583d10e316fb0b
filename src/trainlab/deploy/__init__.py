"""Deployment: export a run with an output-parity check, and serve it over HTTP.

`export.export_run` writes a run's model as an ONNX or torch.export (pt2) artifact folder
whose outputs were checked against PyTorch's on the run's test split (export.py's
docstring lists the folder); `trainlab serve` serves a run or such a folder.
"""
