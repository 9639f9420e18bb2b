"""HTML pages of CSV import and export."""
