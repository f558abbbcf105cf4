"""scale (pixel sizes), calibrated post-processing per model version, round predictor

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('projects') as batch:
        batch.add_column(sa.Column('pixel_size_um', sa.Float(), nullable=True))
        batch.add_column(sa.Column('predictor_choice', sa.JSON(), nullable=True))
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('pixel_size_um', sa.Float(), nullable=True))
    with op.batch_alter_table('rounds') as batch:
        batch.add_column(sa.Column('predictor', sa.String(length=32), nullable=True))
    with op.batch_alter_table('model_versions') as batch:
        batch.add_column(sa.Column('postprocess', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('scale', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('model_versions') as batch:
        batch.drop_column('scale')
        batch.drop_column('postprocess')
    with op.batch_alter_table('rounds') as batch:
        batch.drop_column('predictor')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('pixel_size_um')
    with op.batch_alter_table('projects') as batch:
        batch.drop_column('predictor_choice')
        batch.drop_column('pixel_size_um')
