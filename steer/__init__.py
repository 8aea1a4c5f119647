"""abrstack's steering service: which edge serves which title (``abr steer``)."""
