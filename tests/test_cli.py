"""The command line: user errors are one line on stderr with exit status 2, never a traceback."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).parent


def cli(*args, offline_network=False):
    """Run ``ttfs-lab`` as a user would; returns (exit status, stdout, stderr)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(TESTS)}
    code = "import sys; from ttfs_lab.cli import main; sys.exit(main(sys.argv[1:]))"
    if offline_network:  # the download fails as it does without a network
        code = ("import urllib.request, urllib.error\n"
                "def offline(*a, **k): raise urllib.error.URLError('no network')\n"
                "urllib.request.urlopen = offline\n" + code.replace("; ", "\n"))
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def config_file(tiny_config, tmp_path):
    def write(**changes):
        for path, value in changes.items():
            node = tiny_config
            *parents, last = path.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(tiny_config))
        return str(path)

    return write


def one_line_error(status, stderr, started: bool = False):
    """Exit status 2, no traceback, and stderr is the one-line error and nothing else; for an error of a run that
    had started (a NaN), Lightning's own start-up lines and warnings may come first, and the error is the last line.
    Data errors are not such: the CLI prepares the data before it builds the Trainer."""
    assert status == 2 and "Traceback" not in stderr, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), stderr[-2000:]
    assert started or len(lines) == 1, stderr[-2000:]
    return lines[-1]


def printed_spikes_per_neuron(out: str) -> float:
    return float(re.search(r"spikes per neuron ([0-9.]+)", out.strip().splitlines()[-1]).group(1))


def test_fit_then_test_from_the_command_line_print_the_result_and_record_it(config_file, tmp_path):
    status, out, err = cli("fit", "--config", config_file(), "--trainer.max_epochs", "1", "--run.id", "fitted")
    assert status == 0, err[-2000:]
    assert "test accuracy" in out.strip().splitlines()[-1]
    runs = tmp_path / "runs"
    fitted = json.loads((runs / "fitted" / "summary.json").read_text())
    assert printed_spikes_per_neuron(out) == round(fitted["test/spikes_per_neuron_mean"], 4)

    status, out, err = cli("test", "--config", config_file(), "--ckpt_path", fitted["best_checkpoint"],
                           "--run.id", "tested")
    assert status == 0, err[-2000:]
    meta = json.loads((runs / "tested" / "meta.json").read_text())
    tested = json.loads((runs / "tested" / "summary.json").read_text())
    assert meta["status"] == "finished" and meta["stage"] == "test"
    assert printed_spikes_per_neuron(out) == round(tested["test/spikes_per_neuron_mean"], 4)
    assert tested["test/spikes_per_neuron"].keys() == fitted["test/spikes_per_neuron"].keys()


def test_unknown_config_key(config_file):
    assert "tau" in one_line_error(*cli("fit", "--config", config_file(), "--model.tau", "2")[::2])


def test_unknown_dataset(config_file):
    line = one_line_error(*cli("fit", "--config", config_file(**{"data.class_path": "ttfs_lab.data.ImageNet"}))[::2])
    assert "ImageNet" in line and "ttfs_lab.data.MNIST5k" in line


def test_missing_data_folder_while_download_fails(config_file, tmp_path):
    path = config_file(**{"data.class_path": "ttfs_lab.data.FashionMNIST",
                          "data.init_args": {"data_dir": str(tmp_path / "nothing"), "batch_size": 8}})
    line = one_line_error(*cli("fit", "--config", path, offline_network=True)[::2])
    assert str(tmp_path / "nothing") in line and "FashionMNIST" in line


def test_nan_stops_with_one_line(config_file):
    path = config_file(**{"trainer.callbacks": [{"class_path": "helpers.PoisonWeightsAtEpoch",
                                                  "init_args": {"epoch": 0}}]})
    assert "became nan" in one_line_error(*cli("fit", "--config", path)[::2], started=True)


def test_unknown_command():
    assert "fit, validate, test" in one_line_error(*cli("train")[::2])


@pytest.mark.parametrize("args, names", [
    (["--model.T", "0"], "model.T=0"),
    (["--model.spec", "c8-fc11"], "fc10"),
    (["--model.spec", "c8-zz-fc10"], "'zz'"),
    (["--model.decoder", "softmax"], "softmax"),
    (["--model.leak", "1.5"], "leak"),
    (["--model.twd_potential", "-1"], "model.twd_potential"),
])
def test_values_the_network_rejects_are_one_line_errors(config_file, args, names):
    """ValueErrors raised while the model is built reach the user as one line, exit status 2 (issue 11's class)."""
    line = one_line_error(*cli("fit", "--config", config_file(), *args)[::2])
    assert names in line and line.startswith("error: invalid configuration")
