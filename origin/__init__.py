"""abrstack origin."""
