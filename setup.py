"""Package layout: ``fastngd/`` is the package and ``kernels/`` is installed as its
subpackage ``fastngd.kernels`` (never as a top-level ``kernels`` module). The rest of the
configuration lives in pyproject.toml."""
from setuptools import find_packages, setup

packages = find_packages(include=["fastngd", "fastngd.*"])
packages += ["fastngd.kernels"] + [f"fastngd.kernels.{p}" for p in find_packages("kernels")]

setup(packages=packages, package_dir={"fastngd.kernels": "kernels"})
