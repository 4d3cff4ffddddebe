"""Detectors of other projects (NanoDet-m, NanoDet-Plus, PP-PicoDet, YOLOX) described as data:
a card per ONNX file (recipes/peers/), a decoder per output layout, scored and drawn by the
same evaluator as ednas models."""
