"""Search: typos through each workspace's vocabulary of words, not its distinct values; addresses keep no words

Revision ID: 20261207_66
Revises: 20261207_65
Create Date: 2026-12-09 00:00:00.000000
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "20261207_66"
down_revision = "20261207_65"
branch_labels = None
depends_on = None

# Lexemes of 3 to 40 characters, as morket.search.indexing records them after every sync.
_WORDS = """
    INSERT INTO search_words (workspace_id, word)
    SELECT DISTINCT d.workspace_id, w.word
    FROM search_documents d CROSS JOIN LATERAL unnest(tsvector_to_array(d.tsv)) AS w(word)
    WHERE length(w.word) BETWEEN 3 AND 40
    ON CONFLICT DO NOTHING
"""


def upgrade():
    # A million rows hold a few million distinct values (every email, most company names) but tens
    # of thousands of distinct words: a trigram scan of the words is milliseconds where one of the
    # values read the posting lists of the query's trigrams across millions of entries (seconds).
    op.execute(
        """
        CREATE TABLE search_words (
            workspace_id bigint NOT NULL,
            word text NOT NULL,
            CONSTRAINT search_words_pkey PRIMARY KEY (workspace_id, word)
        )
        """
    )
    # Emails, domains and URLs keep no words (their normalised form finds them): what
    # morket.search.indexing writes from now on, applied to the documents already written.
    op.execute(
        "UPDATE search_documents d SET tsv = ''::tsvector FROM table_columns c "
        "WHERE c.id = d.column_id AND c.type IN ('email', 'domain', 'url') AND d.tsv <> ''::tsvector"
    )
    op.execute(_WORDS)
    op.execute("CREATE INDEX ix_search_words_trgm ON search_words USING gin (word gin_trgm_ops)")
    # A query word's completions ("hool" -> "hooli"), read in order: the primary key's collation
    # cannot answer LIKE 'hool%'.
    op.execute("CREATE INDEX ix_search_words_prefix ON search_words (workspace_id, word text_pattern_ops)")
    op.execute("DROP TABLE search_terms")


def downgrade():
    op.execute(
        """
        CREATE TABLE search_terms (
            workspace_id bigint NOT NULL,
            norm text NOT NULL,
            PRIMARY KEY (workspace_id, norm)
        )
        """
    )
    op.execute(
        "INSERT INTO search_terms (workspace_id, norm) SELECT DISTINCT workspace_id, norm FROM search_documents "
        "WHERE length(norm) <= 80 ON CONFLICT DO NOTHING"
    )
    op.execute("CREATE INDEX ix_search_terms_trgm ON search_terms USING gin (norm gin_trgm_ops)")
    op.execute("DROP TABLE search_words")
