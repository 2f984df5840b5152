"""The initreg command's own Hydra config dir (initreg.configs.command): config.yaml, model/ and backend/."""
