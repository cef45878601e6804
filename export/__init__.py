"""export: turn a trained dyser model into TFLite (LiteRT) or ONNX for CPU devices."""
