"""abrstack encoder."""
