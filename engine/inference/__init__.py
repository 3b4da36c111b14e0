"""Running a model over a raster: the window grid, the backends (torch, onnxruntime) and their ONNX cache,
and the streaming predictor."""
