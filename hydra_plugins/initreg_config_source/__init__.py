"""initreg's Hydra plugin: the ``initreg://`` config source, for apps that name it in their search path."""
