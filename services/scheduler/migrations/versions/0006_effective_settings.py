"""effective_json, tuning_json: the settings a job's run decided for its machine, and why

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("effective_json", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("tuning_json", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("tuning_json")
        batch_op.drop_column("effective_json")
