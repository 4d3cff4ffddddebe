"""Accuracy evaluation: predictors (ONNX Runtime, PyTorch) and the COCO mAP evaluator."""
