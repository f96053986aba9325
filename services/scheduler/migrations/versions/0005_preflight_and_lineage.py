"""preflight_json, changes_json, automatic: what pre-flight found, and how a retry differs from its parent

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("preflight_json", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("changes_json", sa.Text(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("automatic", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("automatic")
        batch_op.drop_column("changes_json")
        batch_op.drop_column("preflight_json")
