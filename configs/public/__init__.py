"""initreg's shareable Hydra configs (initreg.configs.public): init/ presets and recipe/ rule sets.

A Hydra app whose search path names ``initreg://`` sees every yaml in these folders through initreg's
config source (a new top-level folder is also added to SERVED in hydra_plugins/initreg_config_source);
the command's own configs (model/, backend/, config.yaml) stay in initreg.configs.command.
"""
