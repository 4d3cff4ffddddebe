"""The named architectures are data (ednas/arch/zoo.py); re-exported beside the models."""

from ednas.arch.zoo import arch_names, get_arch, register

__all__ = ["arch_names", "get_arch", "register"]
