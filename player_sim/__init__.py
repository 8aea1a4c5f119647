"""abrstack player_sim."""
