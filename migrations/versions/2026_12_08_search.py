"""Search: the index of a workspace's cells (full text and trigrams)

Revision ID: 20261207_60
Revises: 20261207_59
Create Date: 2026-12-08 00:00:00.000000
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_60"
down_revision = "20261207_59"
branch_labels = None
depends_on = None

# One function serves the three statement-level triggers search installs on each ut.t_<id>
# (TG_ARGV[0] is the table id). Deleted rows leave the index in the writer's transaction; written
# rows are marked for the next sync (a whole-table mark, row_id 0, past 5,000 rows in one statement).
# An UPDATE that only moved rows (pos) marks nothing.
MARK_FUNCTION = r"""
CREATE OR REPLACE FUNCTION search_mark_rows() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    tid bigint := TG_ARGV[0]::bigint;
    n bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM search_documents d USING old_rows o WHERE d.table_id = tid AND d.row_id = o.id;
        DELETE FROM search_pending p USING old_rows o WHERE p.table_id = tid AND p.row_id = o.id;
        RETURN NULL;
    END IF;
    SELECT count(*) INTO n FROM (SELECT 1 FROM new_rows LIMIT 5001) s;
    IF n > 5000 AND TG_OP = 'UPDATE' THEN
        INSERT INTO search_pending (table_id, row_id)
        SELECT tid, nr.id FROM new_rows nr JOIN old_rows orow ON orow.id = nr.id
        WHERE to_jsonb(nr) - 'pos' IS DISTINCT FROM to_jsonb(orow) - 'pos'
        ON CONFLICT DO NOTHING;
        SELECT count(*) INTO n FROM search_pending WHERE table_id = tid AND row_id <> 0;
        IF n > 5000 THEN
            DELETE FROM search_pending WHERE table_id = tid AND row_id <> 0;
            INSERT INTO search_pending (table_id, row_id) VALUES (tid, 0) ON CONFLICT DO NOTHING;
        END IF;
    ELSIF n > 5000 THEN
        INSERT INTO search_pending (table_id, row_id) VALUES (tid, 0) ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO search_pending (table_id, row_id) SELECT tid, id FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$
"""


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        """
        CREATE TABLE search_documents (
            workspace_id bigint NOT NULL,
            table_id bigint NOT NULL,
            row_id bigint NOT NULL,
            column_id bigint NOT NULL,
            value text NOT NULL,
            norm text NOT NULL,
            tsv tsvector NOT NULL,
            states text[] NOT NULL DEFAULT '{}',
            providers text[] NOT NULL DEFAULT '{}',
            PRIMARY KEY (table_id, row_id, column_id)
        )
        """
    )
    op.execute("CREATE INDEX ix_search_documents_tsv ON search_documents USING gin (tsv)")
    # Trigrams (typos, word similarity) for short cells only: names, emails, domains, phones. Long
    # text would make common trigrams' posting lists huge and every recheck slow; it is matched by
    # its words and their prefixes (the tsvector) instead. The trigrams index the distinct short
    # values of each workspace (``search_terms``), not every document: the candidates a trigram
    # scan rechecks are then narrow rows, each value once however many cells hold it, and the
    # documents holding a found value come from the (workspace_id, norm) btree.
    op.execute(
        """
        CREATE TABLE search_terms (
            workspace_id bigint NOT NULL,
            norm text NOT NULL,
            PRIMARY KEY (workspace_id, norm)
        )
        """
    )
    op.execute("CREATE INDEX ix_search_terms_trgm ON search_terms USING gin (norm gin_trgm_ops)")
    op.execute("CREATE INDEX ix_search_documents_workspace ON search_documents (workspace_id, table_id)")
    # Exact matches first, whatever the trigram and full-text candidates hold.
    op.execute("CREATE INDEX ix_search_documents_norm ON search_documents (workspace_id, norm text_pattern_ops)")
    op.execute(
        """
        CREATE TABLE search_pending (
            table_id bigint NOT NULL,
            row_id bigint NOT NULL,
            marked_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (table_id, row_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE search_tables (
            table_id bigint PRIMARY KEY,
            workspace_id bigint NOT NULL,
            indexed_at timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE search_syncs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            rows integer NOT NULL,
            lag_ms integer NOT NULL
        )
        """
    )
    op.execute(MARK_FUNCTION)


def downgrade():
    op.execute(
        """
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
                     WHERE g.tgname IN ('search_mark_ins', 'search_mark_upd', 'search_mark_del') LOOP
                EXECUTE format('DROP TRIGGER IF EXISTS search_mark_ins ON ut.%I', r.relname);
                EXECUTE format('DROP TRIGGER IF EXISTS search_mark_upd ON ut.%I', r.relname);
                EXECUTE format('DROP TRIGGER IF EXISTS search_mark_del ON ut.%I', r.relname);
            END LOOP;
        END $$
        """
    )
    op.execute("DROP FUNCTION IF EXISTS search_mark_rows()")
    op.execute("DROP TABLE IF EXISTS search_syncs")
    op.execute("DROP TABLE IF EXISTS search_tables")
    op.execute("DROP TABLE IF EXISTS search_pending")
    op.execute("DROP TABLE IF EXISTS search_terms")
    op.execute("DROP TABLE IF EXISTS search_documents")
