"""Dimension factors ("atoms") with union-find, product splits (reshape) and sum splits (concat).

Every tensor dim is an ordered product of atoms, outermost first: qkv's 3·H·D output dim ends as
(3, H, D). Coupling two dims unifies their factor lists with a two-pointer walk that splits a
larger factor where a reshape demands it; merging reshaped dims whole would be wrong (Swin's patch merging would fuse every stage; docs/grouper.md §2).
Concatenation relates dims by a *sum* with offsets, so an atom can instead be split into parts.

An atom class can be *frozen* with a reason: its channels must keep their identity (an op without a
rule touched it, it is the model's input/output, it was indexed). Freezing reaches every part of a
split atom, and a split of a frozen atom yields frozen parts.
"""

from __future__ import annotations

from dataclasses import dataclass


class AlignmentError(Exception):
    """Two factor lists can't be aligned (their sizes interleave, or a concat meets a reshape)."""


@dataclass(frozen=True)
class Tree:
    """How one dim's index decomposes: a leaf atom, a product (row-major) or a concatenation."""

    kind: str  # "leaf" | "prod" | "sum"
    size: int
    atom: int = -1
    parts: tuple["Tree", ...] = ()

    def leaves(self) -> list[int]:
        if self.kind == "leaf":
            return [self.atom]
        return [a for p in self.parts for a in p.leaves()]

    def kept_indices(self, keep: dict[int, list[int]]) -> list[int]:
        """Indices of this dim that survive when each leaf atom ``a`` keeps ``keep[a]`` (others keep all)."""
        if self.kind == "leaf":
            return list(keep.get(self.atom, range(self.size)))
        if self.kind == "sum":
            out: list[int] = []
            offset = 0
            for part in self.parts:
                out.extend(offset + i for i in part.kept_indices(keep))
                offset += part.size
            return out
        out = [0]
        for part in self.parts:  # row-major: earlier parts are outer
            inner = part.kept_indices(keep)
            out = [o * part.size + i for o in out for i in inner]
        return out

    def size_after(self, keep: dict[int, list[int]]) -> int:
        return len(self.kept_indices(keep))

    def size_with(self, widths: dict[int, int]) -> int:
        """This dim's size when leaf atom ``a`` has width ``widths[a]`` (fast: no index lists)."""
        if self.kind == "leaf":
            return widths.get(self.atom, self.size)
        sizes = [p.size_with(widths) for p in self.parts]
        if self.kind == "sum":
            return sum(sizes)
        out = 1
        for s in sizes:
            out *= s
        return out

    def channel_of_index(self, atom: int) -> list[int]:
        """For every index of this dim, which channel of ``atom`` it belongs to (-1: not part of it)."""
        if self.kind == "leaf":
            return list(range(self.size)) if self.atom == atom else [-1] * self.size
        if self.kind == "sum":
            return [c for p in self.parts for c in p.channel_of_index(atom)]
        out = [-1]
        for part in self.parts:
            inner = part.channel_of_index(atom)
            out = [o if o >= 0 else i for o in out for i in inner]
        return out


class AtomTable:
    """Union-find over atoms; a class root may carry a product split or a sum split."""

    def __init__(self) -> None:
        self.size: list[int] = []
        self.parent: list[int] = []
        self.prod: dict[int, list[int]] = {}
        self.sums: dict[int, list[int]] = {}
        self.frozen: dict[int, str] = {}
        self.tags: dict[int, set[str]] = {}

    # -- creation and lookup -------------------------------------------------------------------
    def new(self, size: int, frozen: str | None = None) -> int:
        atom = len(self.size)
        self.size.append(int(size))
        self.parent.append(atom)
        if frozen:
            self.frozen[atom] = frozen
        return atom

    def find(self, atom: int) -> int:
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:  # path compression
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def factors(self, atoms: list[int]) -> list[int]:
        """Expand a product list through product splits to its current factors, dropping size-1 ones."""
        out: list[int] = []
        for atom in atoms:
            root = self.find(atom)
            if root in self.prod:
                out.extend(self.factors(self.prod[root]))
            elif self.size[root] != 1:
                out.append(root)
        return out

    def tree(self, atoms: list[int]) -> Tree:
        """The full index structure of a dim given as a product list."""
        parts = [self._tree_of(a) for a in atoms if self.size[self.find(a)] != 1]
        size = 1
        for p in parts:
            size *= p.size
        if len(parts) == 1:
            return parts[0]
        return Tree("prod", size, parts=tuple(parts))

    def _tree_of(self, atom: int) -> Tree:
        root = self.find(atom)
        if root in self.prod:
            return self.tree(self.prod[root])
        if root in self.sums:
            return Tree("sum", self.size[root], parts=tuple(self._tree_of(c) for c in self.sums[root]))
        return Tree("leaf", self.size[root], atom=root)

    # -- tags and freezing ---------------------------------------------------------------------
    def tag(self, atoms: list[int], label: str) -> None:
        for atom in self.factors(atoms):
            self.tags.setdefault(atom, set()).add(label)

    def tags_of(self, atom: int) -> set[str]:
        return self.tags.get(self.find(atom), set())

    def freeze(self, atoms: list[int], reason: str) -> list[int]:
        """Freeze every part of these atoms; returns the leaf atoms newly frozen."""
        newly: list[int] = []
        for atom in atoms:
            root = self.find(atom)
            if root not in self.frozen:
                self.frozen[root] = reason
                if root not in self.prod and root not in self.sums:
                    newly.append(root)
            for child in self.prod.get(root, []) + self.sums.get(root, []):
                newly.extend(self.freeze([child], reason))
        return newly

    def frozen_reason(self, atom: int) -> str | None:
        return self.frozen.get(self.find(atom))

    # -- splitting -----------------------------------------------------------------------------
    def _split(self, root: int, sizes: list[int], store: dict[int, list[int]]) -> list[int]:
        reason = self.frozen.get(root)
        parts = [self.new(s, frozen=reason) for s in sizes]
        store[root] = parts
        return parts

    def split_prod(self, atom: int, sizes: list[int]) -> list[int]:
        root = self.find(atom)
        if root in self.prod or root in self.sums:
            raise AlignmentError(f"atom {root} is already split")
        return self._split(root, sizes, self.prod)

    def new_sum(self, sizes: list[int]) -> tuple[int, list[int]]:
        """A fresh atom that is the concatenation of fresh parts of ``sizes``."""
        whole = self.new(sum(sizes))
        return whole, self._split(whole, list(sizes), self.sums)

    # -- coupling ------------------------------------------------------------------------------
    def _link(self, child: int, root: int) -> None:
        self.parent[child] = root
        if child in self.tags:
            self.tags.setdefault(root, set()).update(self.tags.pop(child))
        reason = self.frozen.get(child) or self.frozen.get(root)
        if reason:
            if root not in self.frozen or child in self.frozen:
                self.freeze([root], reason)

    def union(self, a: int, b: int) -> None:
        """Declare two atoms the same channel set (same size required)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] != self.size[rb]:
            raise AlignmentError(f"size {self.size[ra]} != {self.size[rb]}")
        a_prod, b_prod = ra in self.prod, rb in self.prod
        a_sum, b_sum = ra in self.sums, rb in self.sums
        if not (b_prod or b_sum):
            self._link(rb, ra)
        elif not (a_prod or a_sum):
            self._link(ra, rb)
        elif a_prod and b_prod:
            # Align the parts first and link only on success: a failure then leaves both split
            # structures reachable, so the caller's freeze reaches every part of both sides.
            self.unify(self.prod[ra], self.prod[rb])
            self.prod.pop(rb)
            self._link(rb, ra)
        elif a_sum and b_sum:
            self._unify_sums(self.sums[ra], self.sums[rb])
            self.sums.pop(rb)
            self._link(rb, ra)
        else:
            raise AlignmentError("a concatenated dim meets a reshaped dim")

    def unify(self, xs: list[int], ys: list[int]) -> None:
        """Couple two dims given as product lists, splitting factors where the shapes require it."""
        left, right = self.factors(xs), self.factors(ys)
        i = j = 0
        while i < len(left) and j < len(right):
            x, y = self.find(left[i]), self.find(right[j])
            if x == y:
                i, j = i + 1, j + 1
                continue
            sx, sy = self.size[x], self.size[y]
            if sx == sy:
                self.union(x, y)
                i, j = i + 1, j + 1
            elif sx > sy and sx % sy == 0:
                head, tail = self.split_prod(x, [sy, sx // sy])
                self.union(head, y)
                left[i] = tail
                j += 1
            elif sy > sx and sy % sx == 0:
                head, tail = self.split_prod(y, [sx, sy // sx])
                self.union(x, head)
                right[j] = tail
                i += 1
            else:
                raise AlignmentError(f"factors {sx} and {sy} interleave")
        if i < len(left) or j < len(right):
            raise AlignmentError("dims of different sizes")

    def _unify_sums(self, xs: list[int], ys: list[int]) -> None:
        xs, ys = list(xs), list(ys)
        i = j = 0
        while i < len(xs) and j < len(ys):
            x, y = self.find(xs[i]), self.find(ys[j])
            sx, sy = self.size[x], self.size[y]
            if sx == sy:
                self.union(x, y)
                i, j = i + 1, j + 1
            elif sx > sy:
                whole, (head, tail) = self.new_sum([sy, sx - sy])
                self.union(whole, x)
                self.union(head, y)
                xs[i] = tail
                j += 1
            else:
                whole, (head, tail) = self.new_sum([sx, sy - sx])
                self.union(whole, y)
                self.union(x, head)
                ys[j] = tail
                i += 1
