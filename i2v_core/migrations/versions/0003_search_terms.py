"""search terms: the index behind GET /v1/videos?q=

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from i2v_core.search_terms import document_terms

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    search_terms = op.create_table(
        "search_terms",
        sa.Column("term", sa.LargeBinary(), nullable=False),
        sa.Column("job_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_seq"], ["jobs.seq"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("term", "job_seq"),
    )
    op.create_index(op.f("ix_search_terms_job_seq"), "search_terms", ["job_seq"], unique=False)

    # The jobs written before this revision get their terms too.
    connection = op.get_bind()
    jobs = sa.table("jobs", sa.column("seq"), sa.column("instruction"), sa.column("prompt"))
    last = 0
    while True:
        batch = connection.execute(
            sa.select(jobs.c.seq, jobs.c.instruction, jobs.c.prompt)
            .where(jobs.c.seq > last)
            .order_by(jobs.c.seq)
            .limit(_BATCH)
        ).all()
        if not batch:
            break
        rows = [
            {"term": term, "job_seq": seq}
            for seq, instruction, prompt in batch
            for term in document_terms(instruction, prompt)
        ]
        if rows:
            op.bulk_insert(search_terms, rows)
        last = batch[-1].seq


def downgrade() -> None:
    op.drop_index(op.f("ix_search_terms_job_seq"), table_name="search_terms")
    op.drop_table("search_terms")
