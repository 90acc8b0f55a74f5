"""Packaging for `fmd_rice` (nbdev 2: metadata lives in `settings.ini`).

Why the pins:
- TensorFlow: `tensorflow-cpu==2.21.*` (Keras 3) is what the package is built and tested with; it is half
  the size of `tensorflow`. Where a `tensorflow` build is already installed (Colab, GPU machines) we keep
  it instead of pulling a second copy.
- `fastcore>=1.10,<1.13`: the range that nbdev 2.4.14 works with (nbdev 3 rejects `settings.ini`).
- `retinaface==1.1.1` is *not* listed: its metadata pins TensorFlow 2.5, so the Makefile installs it
  with `--no-deps`; we only use the frozen RetinaFace graph it ships.
- `ray[data]==2.60.0` (extra `ray`): the version the distributed engine is tested with.
"""
from configparser import ConfigParser
from importlib.metadata import PackageNotFoundError, version
import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini")
cfg = cfg["DEFAULT"]


def _tensorflow():
    "The TensorFlow requirement: keep an installed `tensorflow`, else the CPU build we test with."
    try:
        version("tensorflow")
        return "tensorflow>=2.16"
    except PackageNotFoundError:
        return "tensorflow-cpu==2.21.*"


requirements = cfg.get("requirements", "").split() + [_tensorflow()]
dev_requirements = ["nbdev==2.4.14", "execnb==0.1.16", "jupyterlab>=4", "ipykernel>=6", "pytest>=8"]
# Optional engines and formats: `pip install "fmd_rice[ray]"` (the Makefile installs it).
extras = {"dev": dev_requirements,
          "parquet": ["pyarrow>=14"],  # --format parquet, reading a Parquet run back
          "ray": ["ray[data]==2.60.0"]}  # --engine ray (fmd_rice.distributed); brings pyarrow

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    url=cfg["git_url"],
    keywords=cfg["keywords"].split(),
    python_requires=">=" + cfg["min_python"],
    packages=setuptools.find_packages(include=["fmd_rice", "fmd_rice.*"]),
    package_data={"fmd_rice": ["models/*"]},
    include_package_data=True,
    install_requires=requirements,
    extras_require=extras,
    entry_points={
        "console_scripts": cfg["console_scripts"].split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "License :: OSI Approved :: Apache Software License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    project_urls={"Source": cfg["git_url"]},
    zip_safe=False,
)
