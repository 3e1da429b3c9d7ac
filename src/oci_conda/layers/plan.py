"""Split a packed environment into layers, by a rule that depends only on the solution.

``packages`` (default): every package's files and its ``conda-meta`` record belong to exactly one layer. When the
packages fit the budget each has a layer of its own. Otherwise ``groups = max(1, (budget - 1) // 4)`` layers hold
the smaller packages, each package in group ``crc32(name) % groups`` (by name, not version, so a bump stays in its
group), and the biggest ``budget - 1 - groups`` packages get a layer of their own. Environment-wide files (``conda-meta/history``, conda-pack's activation scripts, anything no
package owns) go into a small top layer. A package's layer holds only that package's bytes, so the same package at
the same prefix gives the same layer digest in any image, and a one-package bump re-ships one layer.

``single``: one layer with everything.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

from ..conda.records import PackageRecord
from ..errors import InstallError, SpecError
from ..oci.tar import TarEntry

Layering = Literal["packages", "single"]
MAX_TOTAL_LAYERS = 127  # overlay's practical limit, base layers included


@dataclass
class LayerPlan:
    """One layer to write: what it is called in the summary, which packages it carries, its entries."""

    name: str
    packages: list[str] = field(default_factory=list)  # dist names
    entries: list[TarEntry] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries if e.kind == "file")


def assign_layers(records: Sequence[PackageRecord], sizes: Mapping[str, int], layering: Layering, max_layers: int,
                  base_layers: int = 0) -> list[LayerPlan]:
    """Which packages share which layer (no entries yet): the layering rule above, from each package's size
    (``sizes``: dist name -> bytes of its files) alone, so the layer memo can plan before installing anything.

    ``layering`` and ``max_layers`` have no defaults here: options.py's table is their one source.
    """
    if layering == "single":
        return [LayerPlan(name=f"conda environment ({len(records)} packages)", packages=[r.dist_name for r in records])]
    if layering != "packages":
        raise SpecError(f"--layering must be 'packages' or 'single', got {layering!r}")
    budget = min(max_layers, MAX_TOTAL_LAYERS - base_layers)
    if budget < 2:
        raise SpecError(f"--max-layers {max_layers} leaves {budget} layer(s) after {base_layers} base layers; "
                        "'packages' layering needs at least 2 (use --layering single)")
    order = [r.dist_name for r in records]
    name_of = {r.dist_name: r.name for r in records}
    groups = 0
    if len(order) <= budget - 1:
        own = set(order)
    else:
        groups = max(1, (budget - 1) // 4)
        own = set(sorted(order, key=lambda d: (-sizes[d], d))[: budget - 1 - groups])
    plans = [LayerPlan(name=d, packages=[d]) for d in order if d in own]
    shared = [LayerPlan(name=f"smaller packages, group {i + 1} of {groups}") for i in range(groups)]
    for d in order:
        if d not in own:
            shared[zlib.crc32(name_of[d].encode()) % groups].packages.append(d)
    return plans + [g for g in shared if g.packages]


def package_sizes(entries: Sequence[TarEntry], owner: Mapping[str, str], records: Sequence[PackageRecord]
                  ) -> dict[str, int]:
    """dist name -> bytes of the files it owns among ``entries`` (what :func:`assign_layers` ranks by)."""
    sizes = {r.dist_name: 0 for r in records}
    for e in entries:
        dist = owner.get(e.path)
        if dist in sizes and e.kind == "file":
            sizes[dist] += e.size
    return sizes


def plan_layers(entries: Sequence[TarEntry], owner: Mapping[str, str], records: Sequence[PackageRecord],
                layering: Layering, max_layers: int, base_layers: int = 0) -> list[LayerPlan]:
    """Group ``entries`` (owned per ``owner``: path -> dist name) into layers, in a deterministic order.

    Order: package layers in the solution's dependency order (``records``), then the shared layer, then the top.
    """
    plans = assign_layers(records, package_sizes(entries, owner, records), layering, max_layers, base_layers)
    if layering == "single":
        plans[0].entries = list(entries)
        return plans
    by_dist: dict[str, list[TarEntry]] = {r.dist_name: [] for r in records}
    top: list[TarEntry] = []
    for e in entries:
        dist = owner.get(e.path)
        (by_dist[dist] if dist in by_dist else top).append(e)
    for plan in plans:
        for d in plan.packages:
            plan.entries.extend(by_dist[d])
    if top:
        plans.append(LayerPlan(name="environment files", entries=top))
    check_hardlinks(plans)
    return plans


def check_hardlinks(plans: Sequence[LayerPlan]) -> None:
    """Hardlinks must point into their own layer: a package's hardlinks stay inside its files, so this only
    guards against owner data that disagrees with the archive."""
    for plan in plans:
        paths = {e.path for e in plan.entries}
        for e in plan.entries:
            if e.kind == "hardlink" and e.linkname not in paths:
                raise InstallError(f"{e.path}: hard link to {e.linkname} would cross layers")
