"""Shard-ready queries, checked (issue 27): every statement the portal runs against a tenant table
must pin `tenant_id` by equality, so that Citus, with the tenant as distribution column, could
route it to one shard. Opt-in (`SHARD_CHECK=1`, `make test-shard-ready`): it parses every statement
with PostgreSQL's own parser (pglast), which `make test` has no time for.

How a statement is judged (`unpinned_tables`):
- every reference to a tenant table (a table with a tenant_id column, partitions included) in
  FROM, JOIN, UPDATE, DELETE ... USING, subqueries and CTEs is a node; a top-level AND conjunct of
  its WHERE or JOIN ... ON of the form `x.tenant_id = <value>` (parameters, constants, functions of
  them: no column) pins it; `x.tenant_id = y.tenant_id` joins two nodes (a co-located join, also
  across a correlated subquery); a node joined to a pinned node is pinned. Equalities under OR,
  `IN (...)` and `= ANY(...)` pin nothing (several shards).
- INSERT into a tenant table names tenant_id with a value (VALUES) or takes it from a pinned row
  (INSERT ... SELECT).
- Row-level security's own `tenant_id = current_setting(...)` does not count: Citus routes on the
  statement's text, not on policies.
- Calls of the SQL functions of docs/isolation.md ("Cross-tenant paths") name no table: they are
  reviewed there, not here (Citus would distribute them by their tenant argument or run them on
  the coordinator).

Which statements: those executed while a portal/ frame is on the stack (the product's own code);
statements a test issues itself to set up or to assert are not the product's. ALLOW below lists
the product code that must span tenants, each with why.

Where statements are captured: SQLAlchemy's `before_cursor_execute` on every engine. The driver-SQL
path (portal/database/driver.py) runs through SQLAlchemy whenever such a listener exists, so it is
captured too; procrastinate's own connections only touch its job tables.
"""
from __future__ import annotations

import os
import re
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

ROOT = Path(__file__).resolve().parent.parent
PORTAL = str(ROOT / "portal") + os.sep

# Product code allowed to span tenants: "path/under/portal.py:function" (or a whole module,
# "path.py") -> why. Matched against every portal frame on the statement's stack.
ALLOW = {
    # The operators' console lists and counts across every tenant by design (it is nobody's
    # tenant page). On Citus: multi-shard queries, fine at an operator's rate.
    "admin/": "operators' console: lists and counts across tenants",
    # The tenant switcher (every signed-in page) lists the person's memberships in every tenant,
    # through the membership_self_read policy. On Citus: a multi-shard query on every page; the
    # fix there is a small per-user directory (user_id -> tenant ids) on the coordinator, or the
    # list cached in the session (docs/scaling.md).
    "tenancy/queries.py:my_tenants": "a person's tenants, for the switcher",
    # An invitation link is opened before its tenant is known: the token's hash finds the row,
    # then the tenant context follows from it. On Citus: a token-hash -> tenant directory.
    "invitations/services.py:find_by_token": "invitation link: the tenant comes from the token",
    # Single sign-on's first sign-in asks whether the verified email has a pending invitation
    # anywhere (invitation_email_read). Rare (first sign-in only): a multi-shard query is fine.
    "sso/services.py:has_pending_invitation": "first SSO sign-in: invitations by email, any tenant",
    # A person's own account pages list their memberships everywhere, as the switcher does:
    # deleting the account (last-owner check) and their personal data export. Rare, multi-shard.
    "profile/deletion.py:memberships": "account deletion: the person's organizations",
    "profile/export.py:collect": "personal data export: the person's organizations",
    # `flask keys adopt` (restoring a backup) reads every tenant's wrapped keys: an operator command.
    "keys/rotation.py:adopt": "operator command over every tenant's keys",
}

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


# The tables with a tenant_id column (partitions included), read from the database once.
_tables: frozenset[str] = frozenset()


def _sql_for_parser(statement: str) -> str:
    """psycopg's placeholders as PostgreSQL's ($1), '%%' back to '%'."""
    return _PLACEHOLDER.sub("$1", statement).replace("%%", "%")


class _Ref:
    __slots__ = ("table", "parent")

    def __init__(self, table):
        self.table, self.parent = table, self

    def root(self):
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


def _union(a, b):
    a, b = a.root(), b.root()
    if a is not b:
        a.parent = b


class _Statement:
    """One parsed statement's tenant-table references and the equalities between them."""

    def __init__(self, tables):
        self.tables = tables
        self.pin = _Ref("<value>")
        self.refs: list[_Ref] = []

    # -- scopes: a list of dicts {alias: _Ref | None}, innermost last (None: a non-tenant name)

    def select(self, node, outer, ctes=frozenset()):
        if node is None:
            return
        if isinstance(node, ast.SelectStmt):
            if node.withClause:
                ctes = self.with_clause(node.withClause, outer, ctes)
            if node.larg is not None:  # UNION / INTERSECT / EXCEPT
                self.select(node.larg, outer, ctes)
                self.select(node.rarg, outer, ctes)
                return
            scope: dict = {}
            quals: list = []
            for item in node.fromClause or ():
                self.from_item(item, scope, quals, outer, ctes)
            chain = outer + [scope]
            self.conditions([node.whereClause, *quals], chain, ctes)
            for field in (node.targetList, node.havingClause, node.valuesLists, node.sortClause,
                          node.groupClause):
                self.sublinks(field, chain, ctes)
        elif isinstance(node, ast.InsertStmt):
            self.insert(node, outer, ctes)
        elif isinstance(node, ast.UpdateStmt):
            if node.withClause:
                ctes = self.with_clause(node.withClause, outer, ctes)
            scope, quals = {}, []
            self.from_item(node.relation, scope, quals, outer, ctes)
            for item in node.fromClause or ():
                self.from_item(item, scope, quals, outer, ctes)
            chain = outer + [scope]
            self.conditions([node.whereClause, *quals], chain, ctes)
            self.sublinks(node.targetList, chain, ctes)
            self.sublinks(getattr(node, "returningClause", None) or getattr(node, "returningList", None), chain, ctes)
        elif isinstance(node, ast.DeleteStmt):
            if node.withClause:
                ctes = self.with_clause(node.withClause, outer, ctes)
            scope, quals = {}, []
            self.from_item(node.relation, scope, quals, outer, ctes)
            for item in node.usingClause or ():
                self.from_item(item, scope, quals, outer, ctes)
            chain = outer + [scope]
            self.conditions([node.whereClause, *quals], chain, ctes)
            self.sublinks(getattr(node, "returningClause", None) or getattr(node, "returningList", None), chain, ctes)
        else:
            # Anything else (CALL, SET, COPY, DDL...): look for queries inside it.
            self.sublinks(node, outer, ctes)

    def with_clause(self, with_clause, outer, ctes):
        ctes = set(ctes)
        for cte in with_clause.ctes or ():
            ctes.add(cte.ctename)
            self.select(cte.ctequery, outer, frozenset(ctes))
        return frozenset(ctes)

    def from_item(self, item, scope, quals, outer, ctes):
        if isinstance(item, ast.RangeVar):
            name = item.alias.aliasname if item.alias else item.relname
            if item.relname in self.tables and item.relname not in ctes:
                ref = _Ref(item.relname)
                self.refs.append(ref)
                scope[name] = ref
            else:
                scope[name] = None
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg, scope, quals, outer, ctes)
            self.from_item(item.rarg, scope, quals, outer, ctes)
            if item.quals is not None:
                quals.append(item.quals)
            if item.alias:
                scope[item.alias.aliasname] = None
        elif isinstance(item, ast.RangeSubselect):
            # LATERAL subqueries see the items before them; others only the outer levels.
            self.select(item.subquery, outer + [scope] if item.lateral else outer, ctes)
            if item.alias:
                scope[item.alias.aliasname] = None
        elif isinstance(item, ast.RangeFunction):
            self.sublinks(item.functions, outer + [scope], ctes)
            if item.alias:
                scope[item.alias.aliasname] = None

    def insert(self, node, outer, ctes):
        if node.withClause:
            ctes = self.with_clause(node.withClause, outer, ctes)
        table = node.relation.relname
        columns = [c.name for c in node.cols or ()]
        query = node.selectStmt
        if table in self.tables and table not in ctes:
            ref = _Ref(table)
            self.refs.append(ref)
            if "tenant_id" in columns and query is not None:
                at = columns.index("tenant_id")
                if query.valuesLists:
                    if all(not _has_column(row[at]) for row in query.valuesLists):
                        _union(ref, self.pin)
                elif query.targetList and len(query.targetList) > at:
                    # INSERT ... SELECT: pinned when the selected tenant_id is a value, or the
                    # tenant_id of a row the select pins (checked after the select is walked).
                    self._insert_source = (ref, query.targetList[at].val)
        if query is not None:
            self.select(query, outer, ctes)
            source = getattr(self, "_insert_source", None)
            if source is not None:
                ref, value = source
                if not _has_column(value):
                    _union(ref, self.pin)
                elif _is_tenant_column(value):
                    scope = self._last_scope
                    target = self.resolve(value, [scope] if scope else [])
                    if target is not None:
                        _union(ref, target)
        self.sublinks(getattr(node, "returningClause", None) or getattr(node, "returningList", None), outer, ctes)

    def conditions(self, nodes, chain, ctes):
        self._last_scope = chain[-1] if chain else None
        for node in nodes:
            for conjunct in _conjuncts(node):
                if _is_false(conjunct):
                    # `WHERE false` (SQLAlchemy folds a condition known to be false into it):
                    # no row, no shard; Citus plans it without touching any.
                    for ref in chain[-1].values() if chain else ():
                        if ref is not None:
                            _union(ref, self.pin)
                    continue
                self.equality(conjunct, chain)
                self.sublinks(conjunct, chain, ctes)

    def equality(self, node, chain):
        if not (isinstance(node, ast.A_Expr) and len(node.name) == 1 and node.name[0].sval == "="):
            return
        left, right = _uncast(node.lexpr), node.rexpr
        if node.kind == enums.A_Expr_Kind.AEXPR_IN:
            # PostgreSQL's parser turns `x IN (v)` into `x = v` (and `(a, b) IN ((x, y))` into
            # `a = x AND b = y`), which is what Citus plans from; longer lists span shards.
            if not (isinstance(right, (list, tuple)) and len(right) == 1):
                return
            right = right[0]
        elif node.kind != enums.A_Expr_Kind.AEXPR_OP:
            return
        right = _uncast(right)
        if isinstance(left, ast.RowExpr) and isinstance(right, ast.RowExpr) and len(left.args) == len(right.args):
            pairs = list(zip(left.args, right.args))
        else:
            pairs = [(left, right)]
        for a, b in pairs:
            self.pair(_uncast(a), _uncast(b), chain)

    def pair(self, left, right, chain):
        for a, b in ((left, right), (right, left)):
            if _is_tenant_column(a):
                ref = self.resolve(a, chain)
                if ref is None:
                    return
                if _is_tenant_column(b):
                    other = self.resolve(b, chain)
                    if other is not None:
                        _union(ref, other)
                elif not _has_column(b):
                    _union(ref, self.pin)
                return

    def resolve(self, column, chain):
        """The tenant-table reference a tenant_id column names, innermost scope first."""
        fields = [f.sval for f in column.fields if isinstance(f, ast.String)]
        for scope in reversed(chain):
            if len(fields) >= 2:
                if fields[-2] in scope:
                    return scope[fields[-2]]
            else:
                refs = [r for r in scope.values() if r is not None]
                if refs:
                    return refs[0] if len(refs) == 1 else None
        return None

    def sublinks(self, node, chain, ctes):
        """Walks any node for subqueries (EXISTS, IN (SELECT), scalar subqueries)."""
        for sub in _find_subselects(node):
            self.select(sub, chain, ctes)

    def unpinned(self) -> list[str]:
        pin = self.pin.root()
        return sorted({r.table for r in self.refs if r.root() is not pin})


def _uncast(node):
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node


def _is_false(node) -> bool:
    node = _uncast(node)
    return (isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean) and not node.val.boolval)


def _is_tenant_column(node) -> bool:
    node = _uncast(node)
    return (isinstance(node, ast.ColumnRef) and isinstance(node.fields[-1], ast.String)
            and node.fields[-1].sval == "tenant_id")


def _conjuncts(node):
    if node is None:
        return
    if isinstance(node, ast.BoolExpr) and node.boolop == enums.BoolExprType.AND_EXPR:
        for arg in node.args:
            yield from _conjuncts(arg)
    else:
        yield node


def _children(node):
    if isinstance(node, (list, tuple)):
        yield from node
    elif isinstance(node, ast.Node):
        for slot in node.__slots__:
            value = getattr(node, slot, None)
            if isinstance(value, (ast.Node, list, tuple)):
                yield value


def _has_column(node) -> bool:
    """Whether an expression reads a column (not a value known before the query runs). Subqueries
    count as columns: their answer depends on rows."""
    if isinstance(node, (ast.ColumnRef, ast.SubLink)):
        return True
    return any(_has_column(child) for child in _children(node))


def _find_subselects(node):
    if isinstance(node, ast.SubLink):
        yield node.subselect
        yield from _find_subselects(node.testexpr)
        return
    if isinstance(node, (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)):
        yield node
        return
    for child in _children(node):
        yield from _find_subselects(child)


@lru_cache(maxsize=20_000)
def unpinned_tables(statement: str, tables: frozenset[str]) -> tuple[str, ...]:
    """The tenant tables `statement` reads or writes without pinning tenant_id by equality."""
    if not any(t in statement for t in tables):
        return ()
    try:
        parsed = parse_sql(_sql_for_parser(statement))
    except ParseError as exc:
        return (f"<unparsable: {exc}>",)
    found: set[str] = set()
    for raw in parsed:
        checked = _Statement(tables)
        checked.select(raw.stmt, [])
        found.update(checked.unpinned())
    return tuple(sorted(found))


# --- the pytest plugin ------------------------------------------------------------------------

_captured: list[tuple[str, tuple[str, ...], str]] = []
_allowed: dict[str, int] = {}
_counts = {"statements": 0, "unpinned, by tests": 0}


def _portal_frames():
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PORTAL):
            yield filename[len(PORTAL):], frame.f_code.co_name, frame.f_lineno
        frame = frame.f_back


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    if not _tables:
        return
    _counts["statements"] += 1
    unpinned = unpinned_tables(statement, _tables)
    if not unpinned:
        return
    frames = list(_portal_frames())
    if not frames:
        _counts["unpinned, by tests"] += 1
        return  # the test's own statement (set-up, assertions), not the portal's
    for path, function, _ in frames:
        for allowed in ALLOW:
            if path.startswith(allowed) if allowed.endswith("/") else (
                    f"{path}:{function}" == allowed or path == allowed):
                _allowed[allowed] = _allowed.get(allowed, 0) + 1
                return
    # Where: the innermost caller outside the database helpers (driver.py runs everyone's SQL).
    path, function, line = next((f for f in frames if not f[0].startswith("database" + os.sep)), frames[0])
    _captured.append((statement, unpinned, f"portal/{path}:{line} ({function})"))


def pytest_configure(config):
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", _before_cursor_execute)


def pytest_unconfigure(config):
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", _before_cursor_execute)
    if _counts["statements"]:  # under xdist the controller runs no test: only the workers report
        print("\nshard-ready:", ", ".join(f"{k} {v}" for k, v in _counts.items()), file=sys.stderr)
    if _allowed:
        print("\nshard-ready: statements allowed to span tenants:",
              ", ".join(f"{k} {v}" for k, v in sorted(_allowed.items())), file=sys.stderr)


@pytest.fixture(autouse=True)
def _shard_ready(request, app, db_urls):
    global _tables
    if not _tables:
        from portal.database.validate import TENANT_TABLES_SQL
        engine = sa.create_engine(db_urls["owner"], poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            _tables = frozenset(row[1] for row in conn.execute(sa.text(TENANT_TABLES_SQL)))
        engine.dispose()
    _captured.clear()
    yield
    found, seen = [], set()
    for statement, tables, where in _captured:
        if (statement, where) not in seen:
            seen.add((statement, where))
            found.append(f"{where}: {', '.join(tables)}\n    {' '.join(statement.split())[:2000]}")
    _captured.clear()
    if found:
        pytest.fail("statements on tenant tables that do not pin tenant_id by equality (Citus could not "
                    "route them to one shard; see docs/scaling.md):\n" + "\n".join(found), pytrace=False)
