"""The model, independent of the engine that runs it: architecture, parameter files, the built-in's artifact, pretrained
backbones, export and quantization."""
