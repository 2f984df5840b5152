"""initreg's Hydra configs: command/ (the initreg command's config dir) and public/ (groups for any Hydra app)."""
