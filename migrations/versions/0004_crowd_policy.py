"""Crowd policies: crop uncertainty scores and provenance, per-project and per-round policy

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('crops') as batch:
        batch.add_column(sa.Column('uncertainty', sa.Float(), nullable=True))
        batch.add_column(sa.Column('expected_fixes', sa.Float(), nullable=True))
        batch.add_column(sa.Column('source', sa.String(length=8), nullable=False, server_default='crowd'))
    with op.batch_alter_table('rounds') as batch:
        batch.add_column(sa.Column('policy', sa.JSON(), nullable=True))
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('crowd_policy', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('crowd_policy')
    with op.batch_alter_table('rounds') as batch:
        batch.drop_column('policy')
    with op.batch_alter_table('crops') as batch:
        batch.drop_column('source')
        batch.drop_column('expected_fixes')
        batch.drop_column('uncertainty')
