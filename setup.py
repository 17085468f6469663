"""Package discovery; everything else is in pyproject.toml.

pyproject.toml's `packages.find` cannot add a package that lives outside the searched folder, and `vla_ood_envs.data`
is `assets/` at the top of the repository (its `package-dir` entry). So the list is found here: every package under
vla_ood_envs/, plus that one.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["vla_ood_envs", "vla_ood_envs.*"]), "vla_ood_envs.data"])
