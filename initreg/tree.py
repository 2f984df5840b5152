"""Parameter trees: dotted paths, glob rules, the plan, and `init_tree`, gathered in one namespace.

Each job has its own module, whose public names this one re-exports:

- initreg.spec: a spec (a tree of shapes or arrays) as dotted paths (`flatten`, `unflatten`);
- initreg.rules: ``{name: {match, init, dtype?, layout?, index?, optional?}}`` as `Rule`s (`parse_rules`);
- initreg.planning: which rule, initializer, dtype and layout each parameter gets (`plan`, `PlanEntry`; in
  columns, `assign`);
- initreg.drawing: drawing the planned parameters (`generate`, `init_tree`);
- initreg.write: streaming them into a .safetensors file (`save_entries`, `save_tree`).

Parameter p is drawn from the stream ``derive_key(seed, p)``: its values depend on (seed, p) only,
not on the other parameters, their order, or the initializer's own seed.
"""

from __future__ import annotations

from initreg.drawing import draw_peak_bytes, generate, init_tree, require_draw, with_aliases
from initreg.planning import Assignment, Assignments, PlanEntry, assign, plan
from initreg.rules import RULE_KEYS, Rule, RuleOptions, Rules, RuleSet, parse_rules
from initreg.spec import Leaf, flatten, unflatten
from initreg.write import (
    DEFAULT_CHUNK_BYTES,
    assemble,
    chunk_indices,
    generate_chunks,
    save_entries,
    save_tree,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "RULE_KEYS",
    "Assignment",
    "Assignments",
    "Leaf",
    "PlanEntry",
    "Rule",
    "RuleOptions",
    "RuleSet",
    "Rules",
    "assemble",
    "assign",
    "chunk_indices",
    "draw_peak_bytes",
    "flatten",
    "generate",
    "generate_chunks",
    "init_tree",
    "parse_rules",
    "plan",
    "require_draw",
    "save_entries",
    "save_tree",
    "unflatten",
    "with_aliases",
]
