"""ednas: hardware-aware compression and architecture search for Enhanced NanoDet."""

__version__ = "0.1.0"
