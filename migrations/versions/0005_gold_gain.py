"""Gold gain per gold submission: what the annotator fixed of what the crop's start got wrong

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.add_column(sa.Column('gold_gain', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assignments') as batch:
        batch.drop_column('gold_gain')
