"""The op table and the built-in entries (channel rules, roles, MAC formulas).

Public: :func:`register_op` to teach isodeploy an op from user code, :data:`TABLE` to look ops up.
Importing this package registers every built-in entry.
"""

from isodeploy.graph.ops.table import ROLES, TABLE, OpSpec, OpTable, register_op, rule
from isodeploy.graph.ops import core, shape, macs  # noqa: E402,F401 - registration side effects

__all__ = ["ROLES", "TABLE", "OpSpec", "OpTable", "register_op", "rule"]
