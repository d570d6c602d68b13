"""yolox_d2.model_zoo: the LazyConfig files from a checkout and from an installed package."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from detectron2.config import LazyConfig, instantiate

from yolox_d2.model_zoo import config_dir, get_config, get_config_file, list_configs


def test_checkout_configs_are_used_without_a_package_copy(repo_root):
    assert config_dir() == str(repo_root / "configs")
    assert get_config_file("yolox_s.py") == str(repo_root / "configs" / "yolox_s.py")
    assert {"yolox_nano.py", "deepforest/yolox_nano_trees.py", "common/models/yolox.py"} <= set(list_configs())


def test_get_config_loads_a_fresh_copy():
    cfg = get_config("yolox_nano.py")
    assert cfg.model.backbone.bottom_up.depthwise is True
    assert cfg.dataloader.train.dataset.image_size == [416, 416]
    cfg.model.num_classes = 3
    assert get_config("yolox_nano.py").model.num_classes == 80
    assert get_config("deepforest/yolox_nano_trees.py").model.num_classes == 1  # relative imports


@pytest.mark.parametrize("name", ["yolox_q.py", "../setup.py"])
def test_unknown_config_lists_the_available_ones(name):
    with pytest.raises(FileNotFoundError) as e:
        get_config_file(name)
    message = str(e.value)
    assert repr(name) in message and "available: " in message
    assert "yolox_s.py" in message and "deepforest/yolox_nano_trees.py" in message


def test_user_config_outside_the_repository(tmp_path, repo_root):
    user = tmp_path / "my_project" / "my_yolox.py"
    user.parent.mkdir()
    user.write_text(
        textwrap.dedent(
            """
            from yolox_d2.model_zoo import get_config

            _base = get_config("yolox_nano.py")
            model = _base.model
            dataloader = _base.dataloader
            train = _base.train
            model.num_classes = 3
            dataloader.train.dataset.dataset_dicts.names = "my_dataset_train"
            """
        )
    )
    assert repo_root not in user.parents
    cfg = LazyConfig.load(str(user))
    assert cfg.dataloader.train.dataset.dataset_dicts.names == "my_dataset_train"
    model = instantiate(cfg.model)
    assert model.head.num_classes == 3


def test_installed_package_ships_the_configs(repo_root, tmp_path):
    """``pip install --target`` of the sources, then import from there only (not the checkout)."""
    src, site = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("yolox_d2", "configs"):
        shutil.copytree(repo_root / name, src / name, ignore=ignore)
    for name in ("setup.py", "MANIFEST.in"):
        shutil.copy(repo_root / name, src / name)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    script = textwrap.dedent(
        """
        import yolox_d2
        from yolox_d2.model_zoo import get_config, get_config_file
        print(yolox_d2.__file__)
        print(get_config_file("yolox_s.py"))
        cfg = get_config("deepforest/yolox_nano_trees.py")  # ..common / ..yolox_nano imports
        print(cfg.model.num_classes, cfg.model.backbone.bottom_up.width)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    package_file, config_file, values = proc.stdout.split("\n")[:3]
    assert package_file == str(site / "yolox_d2" / "__init__.py")
    assert config_file == str(site / "yolox_d2" / "model_zoo" / "configs" / "yolox_s.py")
    assert os.path.isfile(config_file)
    assert values == "1 0.25"
