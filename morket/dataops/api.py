"""JSON API of CSV import and export."""
