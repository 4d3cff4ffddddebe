"""The Enhanced NanoDet model family (and the NanoDet-Plus baseline)."""

from ednas.models.checkpoint import load_checkpoint, save_checkpoint
from ednas.models.detector import Detector, build_model

__all__ = ["Detector", "build_model", "load_checkpoint", "save_checkpoint"]
