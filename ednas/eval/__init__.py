"""Accuracy evaluation: predictors (ONNX Runtime, PyTorch), the COCO mAP evaluator and
`coco_eval.evaluate_model` (a model scored with the settings of its architecture and recipe)."""
