"""Where a deep TTFS stack loses the class: a linear probe of every layer (docs/results/depth-probe.{md,json}).

For each run's best checkpoint, and for the same network at init (the run's seed, before any update), every
TTFS layer's first-spike steps on the first ``--images`` Fashion-MNIST test images are probed by a logistic
regression fitted on the first half and scored on the second (``ttfs_lab/probe.py``; docs/results.md,
"Depth: why 15 layers fail"). The input pixels are probed the same way, as the reference. Per layer: probe
accuracy, fired fraction and mean first-spike step, mean over the row's runs; at init also the largest bias
gradient on the first 64 images (what reaches a layer through silent layers).

    python docs/depth_probe.py                     # the rows of ROWS, from the depth study's table (~50 min, 1 core)
    python docs/depth_probe.py --render            # rewrite the .md from the .json
    python docs/depth_probe.py --row a=runs/x,runs/y --images 2000 --out /tmp/probe
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml

TABLE = Path("runs/ablations/reproduce-fashion_mnist-depth/table.json")
ROWS = ("deep15_ettfs_norm_affine_alpha2", "deep15_kaiming_norm_affine_alpha2", "deep15_ettfs_norm_affine_eps16",
        "deep15_kaiming_norm_affine_eps16", "deep15_ettfs_norm_affine", "deep15_kaiming_norm_affine")


def table_rows(names=ROWS, table: Path = TABLE) -> dict[str, list[str]]:
    """Row name -> the run folders the depth study's table lists for it."""
    runs = {r["row"]: r["runs"] for r in json.loads(table.read_text())["rows"]}
    missing = [n for n in names if n not in runs]
    if missing:
        raise SystemExit(f"{table} has no row {', '.join(missing)}: run them first (docs/results.md, 'How to rerun')")
    return {name: [str(table.parents[2] / run) for run in runs[name]] for name in names}


def test_images(n: int, data_dir: str = "data") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` Fashion-MNIST test images ``[n, 1, 28, 28]`` in [0, 1] and their labels, through the
    project's DataModule (data_dir, else Debian's copy, else a download)."""
    from ttfs_lab.data import FashionMNIST

    data = FashionMNIST(data_dir=data_dir)
    data.prepare_data()
    data.setup("test")
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(data.test_set, range(n)), batch_size=1000)
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def classifiers(run_dir: Path):
    """(the run's best checkpoint, the same classifier at init under the run's seed: before any update)."""
    import lightning as L

    from ttfs_lab.module import TTFSClassifier

    trained = TTFSClassifier.load_from_checkpoint(run_dir / "checkpoints" / "best.ckpt", map_location="cpu")
    seed = yaml.safe_load((run_dir / "config.yaml").read_text()).get("seed_everything", 0)
    L.seed_everything(seed, verbose=False)
    return trained.eval(), TTFSClassifier(**trained.hparams).eval()


def probe_network(net, x, y) -> dict[str, dict[str, float]]:
    """Layer -> probe accuracy (%), fired fraction, mean first-spike step."""
    from ttfs_lab.probe import first_spike_codes, firing, inputs_seen, probe_accuracy

    codes = first_spike_codes(net, x)
    layers = {name: {"probe": 100 * probe_accuracy(code, y), **firing(code, net.T)} for name, code in codes.items()}
    names = list(codes)
    for previous, name in zip(names, names[1:]):  # fc after fc: every input reaches every unit at its own step
        if "_fc" in previous and "_fc" in name:
            layers[name]["seen"] = inputs_seen(codes[previous], codes[name], net.T)
    return layers


def bias_gradients(model, x, y) -> dict[str, float]:
    """TTFS layer -> the largest |d loss / d bias| of its synapse on one batch (cross-entropy of the model's
    logits). A layer whose inputs are silent gets no weight gradient; its bias still gets one, through the
    surrogate's tail (docs/method.md section 2)."""
    from ttfs_lab.probe import ttfs_layers

    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    biases = {name: getattr(model.net.stages[f"{name}_syn"], "bias", None) for name in ttfs_layers(model.net)}
    grads = {name: None if bias is None else bias.grad for name, bias in biases.items()}
    model.zero_grad()
    return {name: float(g.abs().max()) if g is not None else 0.0 for name, g in grads.items()}


def mean_layers(results: list[dict]) -> dict[str, dict[str, float]]:
    """The per-layer figures averaged over runs (std of the probe accuracy with two runs or more)."""
    out = {}
    for layer in results[0]:
        probes = [r[layer]["probe"] for r in results]
        out[layer] = {key: statistics.fmean(r[layer][key] for r in results) for key in results[0][layer]}
        out[layer]["probe_std"] = statistics.stdev(probes) if len(probes) > 1 else 0.0
    return out


def measure(rows: dict[str, list[str]], images: int, out: Path) -> dict:
    """Probe every row, writing ``out``.json after each; a row already there (same runs, same images) is kept, so
    a killed measurement resumes where it stopped."""
    from ttfs_lab.probe import probe_accuracy

    x, y = test_images(images)
    path = out.with_suffix(".json")
    old = json.loads(path.read_text()) if path.exists() else {}
    record = {"images": images, "fit": images // 2, "host": platform.node(), "torch": torch.__version__,
              "input_probe": 100 * probe_accuracy(x.flatten(1), y), "rows": {}}
    for name, run_dirs in rows.items():
        kept = old.get("rows", {}).get(name)
        if old.get("images") == images and kept and kept["runs"] == run_dirs:
            record["rows"][name] = kept
            continue
        start = time.time()
        trained, initial = [], []
        for run_dir in run_dirs:
            model, model0 = classifiers(Path(run_dir))
            trained.append(probe_network(model.net, x, y))
            initial.append(probe_network(model0.net, x, y))
            for layer, grad in bias_gradients(model0, x[:64], y[:64]).items():
                initial[-1][layer]["bias_grad"] = grad
        record["rows"][name] = {"runs": run_dirs, "trained": mean_layers(trained), "init": mean_layers(initial),
                                "wall_s": round(time.time() - start, 1)}
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"{name}: {time.time() - start:.0f} s", flush=True)
    return record


def render(record: dict) -> str:
    lines = [f"Linear probe of each TTFS layer's first-spike steps (`python docs/depth_probe.py`): fitted on "
             f"{record['fit']} Fashion-MNIST test images, scored on the next {record['images'] - record['fit']}; "
             f"mean over each row's runs (± std of the probe). The input pixels score "
             f"{record['input_probe']:.1f} %. Inputs seen at firing (fc after fc): the fraction of the previous "
             "layer's spikes that have arrived when a unit fires (`ttfs_lab.probe.inputs_seen`).", ""]
    for name, row in record["rows"].items():
        lines += [f"### {name} ({len(row['runs'])} runs)", "",
                  "| layer | at init: probe (%) | fired | max bias gradient | trained: probe (%) | fired | "
                  "mean first-spike step | inputs seen at firing |", "|---|---|---|---|---|---|---|---|"]
        for layer, t in row["trained"].items():
            i = row["init"][layer]
            seen = _number(t["seen"]) if "seen" in t else ""
            lines.append(f"| {layer} | {i['probe']:.1f} | {i['fired']:.3f} | {i['bias_grad']:.1e} "
                         f"| {t['probe']:.1f} ± {t['probe_std']:.1f} | {t['fired']:.3f} | {_number(t['mean_step'])} "
                         f"| {seen} |")
        lines.append("")
    return "\n".join(lines)


def _number(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: no unit fired


def parse_rows(specs: list[str]) -> dict[str, list[str]]:
    rows = {}
    for spec in specs:
        name, sep, dirs = spec.partition("=")
        if not sep or not dirs:
            raise SystemExit(f"--row {spec!r} is not valid; use NAME=RUN_DIR[,RUN_DIR...]")
        rows[name] = dirs.split(",")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", default=[], help="NAME=RUN_DIR[,RUN_DIR...] (default: ROWS)")
    parser.add_argument("--images", type=int, default=4000, help="test images: half fit the probe, half score it")
    parser.add_argument("--out", default="docs/results/depth-probe", help="output path without extension")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = parser.parse_args()
    out = Path(args.out)
    if args.render:
        record = json.loads(out.with_suffix(".json").read_text())
    else:
        torch.set_num_threads(1)
        record = measure(parse_rows(args.row) if args.row else table_rows(), args.images, out)
    out.with_suffix(".md").write_text(render(record) + "\n")
    print(out.with_suffix(".md"))


if __name__ == "__main__":
    main()
