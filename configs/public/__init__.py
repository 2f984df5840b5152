"""Config groups for any Hydra app: recipe/ holds the recipes (rule sets of real model codebases)."""
