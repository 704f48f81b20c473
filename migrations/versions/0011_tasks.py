"""Tasks at sites and devices (issue 14, the tasks half).

- `tasks` and `task_comments`: tenant rows (forced RLS, tenant_id in every key and in the
  foreign keys to other tenant tables). A task's device is one of its site's: the foreign key
  (tenant_id, site_id, device_id) references a new unique key of devices (tenant_id, site_id, id),
  and moving a device carries its tasks along (ON UPDATE CASCADE).
- status open/in_progress/blocked/done/cancelled, priority low/medium/high/urgent (enum order is
  sort order); completed_at is set exactly when the task is done (a CHECK says so).
- `due_key` (the due date, or 9999-12-31) and `search` (a 'simple' tsvector of the title) are
  generated columns for keyset pages and word-prefix search.
- Permissions tasks:view, tasks:write, tasks:work join the end of the catalogue: owners and
  admins all, members all three (limited to their sites by the visibility rules), viewers view.
- `portal_my_tasks(limit)`: the signed-in user's open tasks in every tenant they belong to
  (for /tasks), SECURITY DEFINER and answering only for app.user_id, only in tenants where
  they are an active member holding tasks:view. RLS stays on for everything else.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:25:54
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TENANT_PREDICATE = "tenant_id = (SELECT nullif(current_setting('app.tenant_id', true), ''))::uuid"

# A snapshot of portal.tenancy.permissions at this revision (migrations do not import the app).
PERMISSIONS = [
    ("tasks:view", "See tasks at their sites, with no site, and those assigned to or created by them"),
    ("tasks:write", "Create tasks at the sites they see and edit any task they see"),
    ("tasks:work", "Change the status of and comment on tasks assigned to them"),
]
ALL = [name for name, _ in PERMISSIONS]
GRANTS = {"owner": ALL, "admin": ALL, "member": ALL, "viewer": ["tasks:view"]}

# "My tasks" outside any tenant: the open tasks assigned to the transaction's user (app.user_id),
# in each tenant where they are an active member holding tasks:view and that is readable.
# Overdue is judged by the calendar of the task's site, else the tenant's (settings.timezone).
MY_TASKS = """
CREATE FUNCTION public.portal_my_tasks(p_limit integer)
RETURNS TABLE (tenant_id uuid, tenant_name varchar, tenant_slug varchar, task_id uuid, title varchar,
               status public.task_status, priority public.task_priority, due_on date, site_name varchar,
               overdue boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT t.id, t.name, t.slug, k.id, k.title, k.status, k.priority, k.due_on, s.name,
           k.due_on < (now() AT TIME ZONE coalesce(s.timezone, t.settings ->> 'timezone', 'UTC'))::date
      FROM public.user_tenant_associations m
      JOIN public.tenants t ON t.id = m.tenant_id
      JOIN public.tasks k ON k.tenant_id = m.tenant_id AND k.assignee_id = m.user_id
      LEFT JOIN public.sites s ON s.tenant_id = k.tenant_id AND s.id = k.site_id
     WHERE m.user_id = nullif(current_setting('app.user_id', true), '')::uuid
       AND m.status = 'active'
       AND t.status <> 'pending_deletion' AND public.portal_tenant_readable(t.status)
       AND k.status IN ('open', 'in_progress', 'blocked')
       AND public.user_has_permission(m.user_id, t.id, 'tasks', 'view')
     ORDER BY t.name, k.due_key, k.priority DESC, k.id
     LIMIT least(greatest(p_limit, 1), 500)
$$
"""


def _app_role(app_role: str) -> str | None:
    bind = op.get_bind()
    if not app_role or app_role == bind.exec_driver_sql("SELECT current_user").scalar():
        return None
    return bind.dialect.identifier_preparer.quote(app_role)


def upgrade(app_role: str = "") -> None:
    op.create_unique_constraint(op.f('uq_devices_tenant_id_site_id_id'), 'devices', ['tenant_id', 'site_id', 'id'])
    op.create_table('tasks',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('status', sa.Enum('open', 'in_progress', 'blocked', 'done', 'cancelled', name='task_status'), server_default='open', nullable=False),
    sa.Column('priority', sa.Enum('low', 'medium', 'high', 'urgent', name='task_priority'), server_default='medium', nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('device_id', sa.Uuid(), nullable=True),
    sa.Column('assignee_id', sa.Uuid(), nullable=True),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_soon_noticed_for', sa.Date(), nullable=True),
    sa.Column('overdue_noticed_for', sa.Date(), nullable=True),
    sa.Column('due_key', sa.Date(), sa.Computed("COALESCE(due_on, '9999-12-31'::date)", persisted=True), nullable=False),
    sa.Column('search', postgresql.TSVECTOR(), sa.Computed("to_tsvector('simple'::regconfig, (title)::text)", persisted=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(status = 'done') = (completed_at IS NOT NULL)", name=op.f('ck_tasks_completed_when_done')),
    sa.CheckConstraint('char_length(btrim(title)) BETWEEN 1 AND 200', name=op.f('ck_tasks_title_length')),
    sa.CheckConstraint('char_length(description) <= 10000', name=op.f('ck_tasks_description_length')),
    sa.CheckConstraint('device_id IS NULL OR site_id IS NOT NULL', name=op.f('ck_tasks_device_needs_site')),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], name=op.f('fk_tasks_assignee_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_tasks_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id', 'site_id', 'device_id'], ['devices.tenant_id', 'devices.site_id', 'devices.id'], name=op.f('fk_tasks_tenant_id_site_id_device_id_devices'), onupdate='CASCADE', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'site_id'], ['sites.tenant_id', 'sites.id'], name=op.f('fk_tasks_tenant_id_site_id_sites')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tasks_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_tasks'))
    )
    op.create_index('ix_tasks_assignee_status', 'tasks', ['assignee_id', 'status'], unique=False)
    op.create_index('ix_tasks_search', 'tasks', ['search'], unique=False, postgresql_using='gin')
    op.create_index('ix_tasks_tenant_assignee_status', 'tasks', ['tenant_id', 'assignee_id', 'status'], unique=False)
    op.create_index('ix_tasks_tenant_created_by', 'tasks', ['tenant_id', 'created_by'], unique=False)
    op.create_index('ix_tasks_tenant_device', 'tasks', ['tenant_id', 'device_id'], unique=False, postgresql_where=sa.text('device_id IS NOT NULL'))
    op.create_index('ix_tasks_tenant_due_key', 'tasks', ['tenant_id', 'due_key', 'id'], unique=False)
    op.create_index('ix_tasks_tenant_priority_due_key', 'tasks', ['tenant_id', sa.literal_column('priority DESC'), 'due_key', 'id'], unique=False)
    op.create_index('ix_tasks_tenant_site_status', 'tasks', ['tenant_id', 'site_id', 'status'], unique=False)
    op.create_table('task_comments',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('task_id', sa.Uuid(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('char_length(btrim(body)) BETWEEN 1 AND 5000', name=op.f('ck_task_comments_body_length')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_task_comments_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id', 'task_id'], ['tasks.tenant_id', 'tasks.id'], name=op.f('fk_task_comments_tenant_id_task_id_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_task_comments_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_task_comments'))
    )
    op.create_index('ix_task_comments_tenant_task_created', 'task_comments', ['tenant_id', 'task_id', 'created_at'], unique=False)
    for table in ("tasks", "task_comments"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({TENANT_PREDICATE}) "
                   f"WITH CHECK ({TENANT_PREDICATE})")
    op.execute("CREATE TRIGGER trg_tasks_updated_at BEFORE UPDATE ON tasks "
               "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
    for name, description in PERMISSIONS:
        resource, action = name.split(":")
        op.execute(sa.text("INSERT INTO permissions (name, resource, action, category, description, position) "
                           "SELECT :n, :r, :a, 'Tasks', :d, max(position) + 1 FROM permissions").bindparams(
            n=name, r=resource, a=action, d=description))
    for role, held in GRANTS.items():
        for name in held:
            op.execute(sa.text("INSERT INTO role_permissions (role, permission) VALUES (CAST(:r AS membership_role), :p)")
                       .bindparams(r=role, p=name))
    op.execute(MY_TASKS)
    op.execute("REVOKE ALL ON FUNCTION public.portal_my_tasks(integer) FROM PUBLIC")
    role = _app_role(app_role)
    if role:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tasks, task_comments TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION public.portal_my_tasks(integer) TO {role}")


def downgrade(app_role: str = "") -> None:
    op.execute("DROP FUNCTION public.portal_my_tasks(integer)")
    op.execute("DELETE FROM permissions WHERE name IN ('tasks:view', 'tasks:write', 'tasks:work')")  # grants cascade
    op.drop_index('ix_task_comments_tenant_task_created', table_name='task_comments')
    op.drop_table('task_comments')
    op.drop_index('ix_tasks_tenant_site_status', table_name='tasks')
    op.drop_index('ix_tasks_tenant_priority_due_key', table_name='tasks')
    op.drop_index('ix_tasks_tenant_due_key', table_name='tasks')
    op.drop_index('ix_tasks_tenant_device', table_name='tasks', postgresql_where=sa.text('device_id IS NOT NULL'))
    op.drop_index('ix_tasks_tenant_created_by', table_name='tasks')
    op.drop_index('ix_tasks_tenant_assignee_status', table_name='tasks')
    op.drop_index('ix_tasks_search', table_name='tasks', postgresql_using='gin')
    op.drop_index('ix_tasks_assignee_status', table_name='tasks')
    op.drop_table('tasks')
    op.drop_constraint(op.f('uq_devices_tenant_id_site_id_id'), 'devices', type_='unique')
    op.execute("DROP TYPE task_status")
    op.execute("DROP TYPE task_priority")
