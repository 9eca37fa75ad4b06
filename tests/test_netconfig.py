"""The network configuration (ttfs_lab/netconfig.py): one schema for the YAML, the CLI, the network and the sweep."""

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from ttfs_lab.models import TTFSNet
from ttfs_lab.module import TTFSClassifier
from ttfs_lab.netconfig import DEFAULT_SPECS, NetConfig, check_setting, setting_types

ROOT = Path(__file__).parents[1]
FLAT_ARGS = ["--model.spec", "c4-ap-fc10", "--model.T", "8", "--model.init", "ettfs", "--model.lr", "0.001"]


def parse(args: list[str]):
    """The platform's CLI schema (``ttfs_lab.config.TTFSLabCLI``) parsing ``args``, nothing instantiated."""
    from ttfs_lab.config import TTFSLabCLI

    class ParseOnly(TTFSLabCLI):
        def instantiate_classes(self) -> None:
            pass

    return ParseOnly(args=[*args, "--data", "ttfs_lab.data.MNIST5k"]).config


def test_every_network_setting_is_a_flat_model_option_with_the_config_default():
    model = parse([]).model
    for field in dataclasses.fields(NetConfig):
        assert model[field.name] == field.default, field.name


def test_flat_command_line_keys_reach_the_network_and_sparse_can_be_set():
    model = parse([*FLAT_ARGS, "--model.sparse", "false", "--model.mode", "step"]).model.as_dict()
    module = TTFSClassifier(**model)
    assert module.net.config.spec == "c4-ap-fc10" and module.net.T == 8 and module.hparams.lr == 0.001
    assert module.net.sparse is False and module.hparams.sparse is False
    assert module.net.mode == "step" and all(n.mode == "step" for n in module.net.stages.values() if hasattr(n, "mode"))


def test_a_network_setting_of_the_wrong_type_is_refused_by_the_parser():
    from jsonargparse import ArgumentError

    with pytest.raises(ArgumentError, match="model.T"):
        parse(["--model.T", "many"])


def test_hparams_hold_every_setting_and_the_spec_the_network_was_built_from():
    module = TTFSClassifier(dataset="mnist5k", T=4, schedule="constant")
    assert module.hparams.spec == DEFAULT_SPECS["mnist5k"] == module.net.config.spec
    for key, value in NetConfig().settings().items():
        if key not in ("spec", "T"):
            assert module.hparams[key] == value, key
    assert module.hparams.T == 4


def test_event_data_takes_T_and_the_encoder_from_the_frames():
    config = NetConfig(T=8).resolve("dvsgesture", frames=4)
    assert (config.T, config.encoder, config.spec) == (4, "frames", DEFAULT_SPECS["dvsgesture"])
    assert NetConfig(T=8, encoder="latency").resolve("mnist").encoder == "latency"
    assert NetConfig().resolve("mnist").encoder == "direct"


def test_a_checkpoint_with_the_old_flat_hyperparameters_loads(tmp_path):
    """Checkpoints written before NetConfig: flat hparams without ``sparse`` or the calibration settings, and
    LightningCLI's instantiator (``load_from_checkpoint`` then parses them with the CLI schema)."""
    old = {"spec": "c4-ap-fc16-fc10", "T": 4, "encoder": "direct", "decoder": "twd", "logit_scale": None,
           "learnable_scale": False, "twd_weights": "linear", "twd_decay": 0.8, "twd_potential": 0.1, "init": "ettfs",
           "init_gain": 1.0, "init_distribution": "normal", "ettfs_first_layer_t": True, "norm": True, "affine": True,
           "pool": None, "theta": 1.0, "leak": 1.0, "surrogate": "sigmoid", "alpha": 4.0, "mode": "auto",
           "optimizer": "adam", "lr": 0.002, "weight_decay": 0.0, "momentum": 0.9, "schedule": "cosine",
           "warmup_epochs": 0.0, "label_smoothing": 0.0, "compile": False, "fused_optimizer": True, "num_classes": 10,
           "frames": None, "input_shape": (1, 28, 28), "dataset": "mnist5k"}
    torch.manual_seed(0)
    source = TTFSClassifier(**old)
    x = torch.rand(3, 1, 28, 28)
    for instantiator in (None, "lightning.pytorch.cli.instantiate_module"):
        hparams = {**old, "_instantiator": instantiator} if instantiator else old
        path = tmp_path / "old.ckpt"
        torch.save({"state_dict": source.state_dict(), "hyper_parameters": hparams, "hparams_name": "kwargs",
                    "pytorch-lightning_version": "2.6.0"}, path)
        loaded = TTFSClassifier.load_from_checkpoint(path, map_location="cpu")
        assert loaded.net.config == source.net.config and loaded.hparams.sparse is True
        assert torch.equal(loaded(x), source(x))


@pytest.mark.parametrize("settings,message", [
    ({"T": 0}, "model.T=0 is not valid; use T >= 1"),
    ({"mode": "fast"}, "model.mode='fast' is not valid; choose one of: step, parallel, auto"),
    ({"pool": "min"}, "model.pool='min' is not valid; choose one of: avg, max"),
])
def test_a_bad_setting_is_one_line_from_the_config_and_from_the_network(settings, message):
    for build in (lambda: NetConfig(**settings), lambda: TTFSNet("fc10", (1, 4, 4), 10, **settings)):
        with pytest.raises(ValueError) as err:
            build()
        assert str(err.value) == message


def test_no_default_spec_without_a_known_dataset():
    with pytest.raises(ValueError, match="no default model.spec for dataset 'imagenet'; set model.spec"):
        NetConfig().resolve("imagenet")


def test_check_setting_checks_the_type_then_the_config():
    assert setting_types()["T"] == (int, False) and setting_types()["logit_scale"] == (float, True)
    check_setting("twd_potential", 1)  # an int is a number
    check_setting("pool", None)
    for name, value, message in [("T", "many", "use an integer"), ("norm", 1, "use true or false"),
                                 ("T", True, "use an integer"), ("decoder", None, "use a string"),
                                 ("T", 0, "use T >= 1")]:
        with pytest.raises(ValueError, match=message):
            check_setting(name, value)


def test_no_shipped_config_repeats_a_default_spec():
    """The default spec of each dataset is defined once, in ``DEFAULT_SPECS``; configs say ``spec: null``."""
    for path in sorted((ROOT / "configs").glob("**/*.yaml")):
        model = (yaml.safe_load(path.read_text()) or {}).get("model") or {}
        assert model.get("spec") not in DEFAULT_SPECS.values(), path


def test_resolve_fills_the_init_schemes_gain_and_keeps_a_given_one():
    assert NetConfig().resolve("mnist").init_gain == 0.5
    assert NetConfig(init="kaiming").resolve("mnist").init_gain == 1.0
    assert NetConfig(init_gain=2.0).resolve("mnist").init_gain == 2.0
    assert NetConfig().init_gain is None  # unresolved: the scheme decides


def test_a_bad_output_threshold_is_one_line():
    with pytest.raises(ValueError) as err:
        NetConfig(output_theta=0.0)
    assert str(err.value) == "model.output_theta=0.0 is not valid; the threshold must be > 0 (or null = model.theta)"
