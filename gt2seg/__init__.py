"""Ground Truth semantic-segmentation jobs -> the SageMaker segmentation layout."""
__version__ = "0.1.0"
