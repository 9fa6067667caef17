"""The package list, which pyproject.toml cannot express: ideagen's own packages plus the
top-level prompts/ and template/ folders shipped inside it as ideagen._prompts and
ideagen._template (automatic discovery cannot be combined with that renaming). Everything
else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

BUNDLED = {"ideagen._prompts": "prompts", "ideagen._template": "template"}
SKIPPED = ["*__pycache__*"]


def packages() -> list[str]:
    found = find_namespace_packages(include=["ideagen", "ideagen.*"], exclude=SKIPPED)
    for package, folder in BUNDLED.items():
        # Sub-folders (template/latex, template/run_0) are listed too, as setuptools wants
        # every folder of shipped files named.
        found += [
            package,
            *(f"{package}.{sub}" for sub in find_namespace_packages(folder, exclude=SKIPPED)),
        ]
    return found


setup(packages=packages(), package_dir=BUNDLED)
