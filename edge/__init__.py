"""abrstack edge."""
