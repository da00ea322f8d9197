"""Ship only the pure modules of ``opwatch`` (see pyproject.toml); the rest is declarative."""

from setuptools import setup
from setuptools.command.build_py import build_py

# What opwatch_client imports from the functions' package: stdlib-only modules.
SHARED_MODULES = {"__init__", "contracts", "errors", "wire"}


class PureModulesOnly(build_py):
    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        if package != "opwatch":
            return modules
        return [m for m in modules if m[1] in SHARED_MODULES]


setup(cmdclass={"build_py": PureModulesOnly})
