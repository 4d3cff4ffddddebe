"""Architecture as data, at the bottom of the package (no torch): the description the builder
consumes (`spec`), the named published architectures (`zoo`) and the search space over them
(`space`), which the latency tables, the supernet and the search all share."""

from ednas.arch.spec import (
    BUILDER_VERSION, MOBILENEXT_ROWS, SHUFFLENET_CHANNELS, Activation, ArchSpec, AuxArch, BackboneArch,
    HeadArch, MobileNeXtArch, NeckArch, NeckBlock, SandglassForm, SandglassSpec, ShuffleNetV2Arch,
    make_divisible,
)

__all__ = [
    "BUILDER_VERSION", "MOBILENEXT_ROWS", "SHUFFLENET_CHANNELS", "Activation", "ArchSpec", "AuxArch",
    "BackboneArch", "HeadArch", "MobileNeXtArch", "NeckArch", "NeckBlock", "SandglassForm", "SandglassSpec",
    "ShuffleNetV2Arch", "make_divisible",
]
