"""Impasto as a user installs it: from a wheel, in a new venv, run from an empty folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def test_the_wheel_installs_one_import_name_and_its_parts(installed_package: Path, tmp_path: Path) -> None:
    code = ("import importlib.util, impasto, impasto.daemon.main, impasto.install.gimp\n"
            "print([n for n in ('daemon', 'cli', 'protocol', 'plugin', 'install') if importlib.util.find_spec(n)])\n"
            "print(impasto.__file__)")
    out = subprocess.run([str(installed_package / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0] == "[]"  # no generic top-level name (python-daemon's `daemon`, say)
    package = Path(out[1]).parent
    assert package.is_relative_to(installed_package)  # the wheel's copy, not this tree's
    assert (package / "plugin" / "impasto_gimp.py").is_file() and (package / "plugin" / "impasto-help.html").is_file()
    assert len(list((package / "daemon" / "paintings").glob("*.jpg"))) == 4


def test_impasto_demo_and_install_gimp_work_from_an_empty_folder(installed_package: Path, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {**os.environ, "IMPASTO_ENDPOINT": f"ipc://{tmp_path}/run/daemon.sock", "HOME": str(tmp_path)}
    impasto = str(installed_package / "bin" / "impasto")
    try:
        demo = subprocess.run([impasto, "demo", "--size", "64", "--iterations", "4"], capture_output=True, text=True,
                              cwd=folder, env=env, timeout=300)
        assert demo.returncode == 0, demo.stderr
        assert (folder / "impasto-demo.png").is_file() and "impasto stylize" in demo.stderr
    finally:
        subprocess.run([impasto, "stop"], cwd=folder, env=env, capture_output=True, timeout=60)
    profile = tmp_path / "GIMP" / "3.0"
    install = subprocess.run([impasto, "install-gimp", "--gimp-dir", str(profile), "--gimp-python", "python3"],
                             capture_output=True, text=True, cwd=folder, env=env, timeout=120)
    plugin = profile / "plug-ins" / "impasto_gimp"
    assert f"installed the plug-in in {plugin}" in install.stdout, install.stdout + install.stderr
    assert (plugin / "impasto" / "protocol" / "client.py").is_file() and os.access(plugin / "impasto_gimp.py", os.X_OK)
    assert str(installed_package / "bin" / "impasto-daemon") in (plugin / "impasto.json").read_text()
