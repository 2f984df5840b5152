"""initreg's Hydra plugin: the `init` group and initreg's public configs in every Hydra app (see initreg_searchpath)."""
