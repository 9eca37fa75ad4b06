"""Early exit at the first output spike: same predictions as the full folded network, with the exit steps."""

import pytest
import torch

from ttfs_lab.functional.decoding import decision_steps
from ttfs_lab.inference import can_exit_early, compare, early_exit, final_decisions
from ttfs_lab.models import TTFSNet


def net_and_input(decoder="twd", encoder="direct", seed=0):
    """``decoder`` may be ``twd_spikes``: TWD without the potential term."""
    torch.manual_seed(seed)
    kw = {"decoder": "twd", "twd_potential": 0.0} if decoder == "twd_spikes" else {"decoder": decoder}
    if encoder == "frames":
        net = TTFSNet("c6-ap-fc16-fc5", (2, 8, 8), 5, T=6, encoder="frames", init_gain=2.0, **kw)
        x = (torch.rand(24, 6, 2, 8, 8) < 0.2).float()
    else:
        net = TTFSNet("c6-ap-fc16-fc5", (1, 10, 10), 5, T=6, encoder=encoder, init_gain=2.0, **kw)
        x = torch.rand(24, 1, 10, 10)
    return net, x


@pytest.mark.parametrize("decoder", ["twd", "twd_spikes", "first_spike", "count", "membrane"])
@pytest.mark.parametrize("encoder", ["direct", "latency", "frames"])
def test_early_exit_keeps_every_prediction_of_the_full_folded_network(decoder, encoder):
    net, x = net_and_input(decoder, encoder)
    folded = net.fold()
    full = folded(x)
    result = early_exit(folded, x)
    assert torch.equal(result.pred, full.logits.argmax(-1))
    assert ((result.exit_step >= 1) & (result.exit_step <= net.T)).all()
    assert result.sample_steps == int(result.exit_step.sum())
    assert result.steps_run == int(result.exit_step.max())
    if decoder in ("twd", "twd_spikes", "first_spike"):  # final exactly at the first output spike
        assert torch.equal(result.exit_step, decision_steps(full.out))
    elif decoder == "count":  # ties among fired classes can keep it open longer
        assert (result.exit_step >= decision_steps(full.out)).all()
    else:  # a non-spiking output decides only at T
        assert (result.exit_step == net.T).all()


def test_some_samples_leave_early_and_save_work():
    net, x = net_and_input()
    result = early_exit(net.fold(), x)
    assert (result.exit_step < net.T).any()
    assert result.sample_steps < x.shape[0] * net.T


def test_decision_is_final_only_when_no_class_can_overtake():
    net, _ = net_and_input(decoder="twd_spikes")
    out = torch.zeros(6, 1, 5)
    pred, final = final_decisions(net, out, 2)  # nothing fired yet: nothing is final
    assert not final.any()
    out[1, 0, 3] = 1  # class 3 fires at step 2: no later spike can reach kappa * w_2
    pred, final = final_decisions(net, out, 2)
    assert pred.item() == 3 and final.item()
    pred, final = final_decisions(net, torch.zeros(6, 1, 5), 6)  # at T every decision is final
    assert final.item()


def test_potential_decides_between_classes_firing_at_the_same_step_and_is_final_there():
    net, _ = net_and_input(decoder="twd")
    out = torch.zeros(6, 1, 5)
    potential = torch.linspace(0, 0.5, 5).repeat(6, 1).unsqueeze(1)  # below threshold: nobody has fired
    assert not final_decisions(net, out, 2, potential)[1].any()
    out[1, 0, 3] = out[1, 0, 1] = 1  # classes 1 and 3 fire together at step 2 ...
    potential[1:, 0, 1], potential[1:, 0, 3] = 1.7, 1.2  # ... class 1 with the higher potential
    potential[2:, 0, 4] = 9.0  # class 4 crosses later with a huge potential: too late
    out[2, 0, 4] = 1
    pred, final = final_decisions(net, out, 2, potential)
    assert pred.item() == 1 and final.item()
    assert net.decoder(out, potential).argmax(-1).item() == 1  # the full decoder agrees at T


def test_negative_learned_scale_disables_early_exit():
    net, x = net_and_input()
    with torch.no_grad():
        net.decoder.scale.fill_(-1.0)
    assert not can_exit_early(net)
    result = early_exit(net, x)
    assert (result.exit_step == net.T).all() and torch.equal(result.pred, net(x).logits.argmax(-1))


def test_compare_reports_speed_and_predictions_kept():
    net, x = net_and_input()
    y = torch.randint(0, 5, (x.shape[0],))
    report = compare(net, x, y, repeats=1)
    assert report["predictions_kept"] == 1.0
    assert report["accuracy_full"] == report["accuracy_early_exit"]
    assert report["mean_exit_step"] == report["mean_decision_step"]
    for key in ("time_full_parallel_s", "time_full_step_s", "time_early_exit_s", "speedup_vs_full_parallel",
                "speedup_vs_full_step", "work_fraction"):
        assert report[key] > 0
