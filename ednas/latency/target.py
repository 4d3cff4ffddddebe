"""The latency target: what a latency number is *for* — device, precision, ORT threads and
spinning, and the CPU whose kernels ran it (model name and INT8-relevant flags, ednas.cpu).

Tables carry their target in their metadata; the predictor, `ednas latency`, `ednas prune
--table`, the search and the pipeline state the target they want, and `check_table` refuses
a table measured for another one in one line that says how to profile the right table.
Another CPU counts: the same model's unit ratios differ by up to 25 % between a Zen 3 and a
VNNI Xeon, and INT8 kernels dispatch on the flags (see the notes on measuring).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ednas.cpu import cpu_info
from ednas.latency.table import BUILDER_VERSION, TABLES_DIR, LatencyTableError, TableMeta, default_table

if TYPE_CHECKING:
    from ednas.latency.table import LatencyTable

log = logging.getLogger(__name__)

DEFAULT_SPACE = "enhanced_nanodet"  # search_spaces/enhanced_nanodet.yml, what `ednas profile` reads without --space


@dataclass(frozen=True)
class LatencyTarget:
    """Device and ORT settings, plus the CPU identity (None: not checked, e.g. a remote device
    measured through a bundle)."""

    device: str = "cpu"
    precision: str = "fp32"  # fp32 | int8 (INT8 = what `ednas quantize` ships)
    threads: int = 2  # ORT intra-op threads
    spin: bool = False  # ORT intra-op spin-waiting
    cpu: str | None = None  # CPU model name (/proc/cpuinfo)
    cpu_flags: frozenset[str] | None = None  # INT8-relevant flags present (ednas.cpu.INT8_FLAGS)

    @classmethod
    def here(cls, precision: str = "fp32", threads: int = 2, spin: bool = False) -> "LatencyTarget":
        """This machine's CPU with these settings."""
        info = cpu_info()
        return cls("cpu", precision, threads, spin, info.model, info.flags)

    @classmethod
    def of_table(cls, meta: TableMeta) -> "LatencyTarget":
        """The target a table was measured for."""
        flags = meta.machine.get("cpu_flags")
        return cls(meta.device, meta.precision, meta.threads, meta.spin, meta.machine.get("cpu"),
                   None if flags is None else frozenset(flags))

    def describe(self) -> str:
        """e.g. 'cpu, int8, 2 threads, AMD EPYC (avx2, avx512_vnni)'."""
        cpu = ""
        if self.cpu is not None:
            flags = ", ".join(sorted(self.cpu_flags)) if self.cpu_flags is not None else "flags not recorded"
            cpu = f", {self.cpu} ({flags or 'no INT8 SIMD flags'})"
        return f"{self.device}, {self.precision}, {self.threads} threads{', spinning' if self.spin else ''}{cpu}"

    def profile_command(self, out: str | Path, space_name: str = DEFAULT_SPACE) -> str:
        """The `ednas profile` command that measures a table for this target."""
        space = "" if space_name == DEFAULT_SPACE else "--space SPACE.yml "
        device = "--bundle DIR (then --import)" if self.device != "cpu" else "--device cpu"
        return (f"ednas profile {space}{device} --precision {self.precision} --threads {self.threads}"
                f"{' --spin' if self.spin else ''} --out {out}")


def target_for(table_path: str | Path, precision: str | None = None, threads: int | None = None) -> LatencyTarget:
    """The target a command asks of `table_path`: the given precision and threads, else the
    table's (fp32 and 2 when it does not exist yet); this CPU unless the table is of a device
    measured elsewhere (a bundle), whose CPU is not this one's business."""
    from ednas.latency.table import meta_path, read_meta

    mpath = meta_path(Path(table_path))
    meta = read_meta(mpath) if mpath.is_file() else TableMeta()
    precision, threads = precision or meta.precision, threads or meta.threads
    if meta.device != "cpu":
        return LatencyTarget(meta.device, precision, threads, meta.spin)
    return LatencyTarget.here(precision, threads, meta.spin)


def suggested_out(target: LatencyTarget, space_name: str, refused: Path) -> Path | str:
    """Where a new table for `target` should go: the default path when it is free."""
    path = default_table(space_name, target.precision, target.threads, target.device)
    return path if path != Path(refused) and not path.exists() else "NEW.csv"


def check_table(table: "LatencyTable | TableMeta", target: LatencyTarget, space_fingerprint: str | None = None,
                path: str | Path | None = None) -> None:
    """Refuse (LatencyTableError, one line with the `ednas profile` command) a table measured for
    another space, device, precision, thread count, spinning, CPU model or CPU flags, or by a
    builder that priced another INT8 model. A table that recorded no CPU flags (older builds)
    is accepted with a warning."""
    meta = table if isinstance(table, TableMeta) else table.meta
    where = Path(path) if path is not None else getattr(table, "path", TABLES_DIR / "table.csv")
    space = meta.space_name or DEFAULT_SPACE
    have = LatencyTarget.of_table(meta)
    hint = target.profile_command(suggested_out(target, space, where), space)

    def refuse(what: str) -> LatencyTableError:
        return LatencyTableError(f"{where} was measured {what}; profile a table for {target.describe()} "
                                 f"with `{hint}`")

    if space_fingerprint is not None and meta.space_fingerprint != space_fingerprint:
        space_hint = target.profile_command("NEW.csv", "other")
        raise LatencyTableError(f"{where} was measured for search space {meta.space_name!r} "
                                f"({meta.space_fingerprint}), not this one ({space_fingerprint}); "
                                f"profile this space with `{space_hint}`")
    for name, said in (("device", "on device {}"), ("precision", "at {}"), ("threads", "with {} threads"),
                       ("spin", "with spinning {}")):
        if getattr(have, name) != getattr(target, name):
            raise refuse(f"{said.format(getattr(have, name))}, not {getattr(target, name)}")
    if meta.precision == "int8" and meta.builder < BUILDER_VERSION:
        raise refuse(f"by table builder {meta.builder}, whose INT8 units are not the model `ednas quantize` "
                     f"ships (builder {BUILDER_VERSION})")
    if target.cpu is not None and have.cpu is not None and have.cpu != target.cpu:
        raise refuse(f"on CPU {have.cpu!r}, not {target.cpu!r}")
    if target.cpu_flags is not None:
        if have.cpu_flags is None:
            log.warning("%s recorded no CPU flags (an older build); it may come from a CPU without %s: "
                        "rebuild it with `%s` to be sure", where, ", ".join(sorted(target.cpu_flags)) or "them", hint)
        elif have.cpu_flags != target.cpu_flags:
            diff = ", ".join(sorted(have.cpu_flags ^ target.cpu_flags))
            raise refuse(f"on a CPU with other INT8 instructions ({diff} differ: "
                         f"{', '.join(sorted(have.cpu_flags)) or 'none'} there)")
    if meta.builder < BUILDER_VERSION:
        log.warning("%s was built by table builder %d (now %d); rebuild it with `%s`", where, meta.builder,
                    BUILDER_VERSION, hint)
