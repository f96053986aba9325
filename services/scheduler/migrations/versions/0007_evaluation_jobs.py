"""kind, evaluation_json, results_json: jobs that evaluate another job's weights, and their scores

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default="JOB_KIND_TRAINING"))
        batch_op.add_column(sa.Column("evaluation_json", sa.Text(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("results_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("results_json")
        batch_op.drop_column("evaluation_json")
        batch_op.drop_column("kind")
