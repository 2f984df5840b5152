"""initreg's Hydra config dir (installed as the package data of initreg.configs)."""
