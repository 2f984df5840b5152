"""initreg's shareable Hydra configs (initreg.configs.public): init/ presets and recipe/ rule sets.

Any Hydra app sees every yaml in these folders through initreg's search-path plugin (a new top-level
folder is also added to GROUPS in hydra_plugins/initreg_searchpath); the command's own configs
(model/, backend/, config.yaml) stay in initreg.configs.command.
"""
