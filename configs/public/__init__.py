"""initreg's shareable Hydra configs (initreg.configs.public): init/ presets and recipe/ rule sets.

Any Hydra app sees them through initreg's search-path plugin; the command's own configs (model/,
backend/, config.yaml) stay in initreg.configs.
"""
