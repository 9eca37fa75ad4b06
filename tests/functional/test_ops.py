"""Synaptic operation counts (docs/method.md section 10): fan-out with borders, pooled inputs, early exit, energy."""

import pytest
import torch
import torch.nn.functional as F

from ttfs_lab.functional.ops import (E_AC_PJ, E_MAC_PJ, Synapse, axis_fanout, energy_pj, fanout_map, ops_until,
                                     synaptic_ops)


def test_axis_fanout_counts_borders():
    # 3 inputs, 3x3 'same' conv: the edge positions feed 2 outputs, the middle one 3
    assert axis_fanout(3, 3, 3, 1, 1).tolist() == [2, 3, 2]
    # 5 inputs, kernel 3, stride 2, padding 1 -> 3 outputs whose windows are [-1, 1], [1, 3], [3, 5]
    assert axis_fanout(5, 3, 3, 2, 1).tolist() == [1, 2, 1, 2, 1]
    # a 2 x 2 map under a 3 x 3 'same' conv: every input reaches both outputs
    assert axis_fanout(2, 2, 3, 1, 1).tolist() == [2, 2]


def test_conv_acs_by_hand():
    syn = Synapse("conv", (2, 3, 3), (5, 3, 3), kernel=3, stride=1, padding=1)
    assert fanout_map(syn).tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    x = torch.zeros(2, 1, 2, 3, 3)  # [T, B, C, H, W]
    x[0, 0, 0, 0, 0] = 1  # a corner spike at step 1: 4 positions x 5 channels
    x[1, 0, 1, 1, 1] = 1  # a centre spike at step 2: 9 x 5
    assert synaptic_ops(syn, x).tolist() == [[20.0], [45.0]]


@pytest.mark.parametrize("shape,k,s,p", [((3, 7, 7), 3, 1, 1), ((2, 8, 6), 3, 2, 1), ((4, 5, 5), 5, 1, 0),
                                         ((1, 9, 9), 3, 3, 0), ((2, 6, 6), 1, 1, 0)])
def test_conv_acs_equal_the_binarized_conv(shape, k, s, p):
    """Independent count: the conv of the input's nonzero indicator with all-ones weights, summed."""
    c_out = 3
    h = (shape[1] + 2 * p - k) // s + 1
    w = (shape[2] + 2 * p - k) // s + 1
    syn = Synapse("conv", shape, (c_out, h, w), kernel=k, stride=s, padding=p)
    x = (torch.rand(3, 4, *shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    ones = torch.ones(c_out, shape[0], k, k)
    expected = F.conv2d(x.flatten(0, 1), ones, stride=s, padding=p).sum((1, 2, 3)).view(3, 4)
    assert torch.equal(synaptic_ops(syn, x), expected.double())


def test_linear_acs_are_spikes_times_fan_out():
    syn = Synapse("fc", (4,), (3,))
    x = torch.tensor([[[1.0, 0.0, 1.0, 1.0]], [[0.0, 1.0, 0.0, 0.0]]])  # [T=2, B=1, 4]
    assert synaptic_ops(syn, x).tolist() == [[9.0], [3.0]]


def test_average_pooled_input_counts_the_window_spikes():
    """Behind a 2 x 2 average pool a value v stands for 4 v spikes, each reaching the pooled unit's fan-out."""
    syn = Synapse("fc", (4,), (3,), events_per_unit=4)
    x = torch.tensor([[[0.25, 0.5, 0.0, 1.0]]])  # 1 + 2 + 0 + 4 spikes of the windows
    assert synaptic_ops(syn, x).tolist() == [[21.0]]
    pooled = F.avg_pool2d(torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]]), 3)  # 4 / 9
    syn9 = Synapse("fc", (1,), (2,), events_per_unit=9)
    assert synaptic_ops(syn9, pooled.view(1, 1, 1)).tolist() == [[8.0]]  # 4 spikes x 2, despite 4/9 rounding


def test_analog_input_is_dense_macs_once():
    conv = Synapse("conv", (1, 28, 28), (32, 28, 28), kernel=3, stride=1, padding=1, analog=True)
    assert conv.dense_macs == 28 * 28 * 32 * 1 * 9
    assert synaptic_ops(conv, torch.rand(1, 5, 1, 28, 28)).tolist() == [[225792.0] * 5]
    assert Synapse("fc", (3136,), (256,)).dense_macs == 3136 * 256


def test_ops_until_the_decision():
    ops = torch.tensor([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])  # [T=3, B=2]
    assert ops_until(ops, torch.tensor([1, 3])).tolist() == [1.0, 70.0]
    assert ops_until(ops, torch.tensor([2, 2])).tolist() == [3.0, 30.0]
    assert ops_until(torch.tensor([[5.0, 6.0]]), torch.tensor([1, 2])).tolist() == [5.0, 6.0]  # computed once


def test_energy_uses_horowitz_costs():
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)
    assert energy_pj(1000, 10) == pytest.approx(1000 * 0.9 + 10 * 4.6)
    assert energy_pj(1000, 10, e_ac=0.03, e_mac=0.2) == pytest.approx(32.0)


def test_half_precision_spikes_are_counted_exactly():
    """bfloat16 holds integers exactly only up to 256: 600 input spikes must still count 600 times the fan-out."""
    syn = Synapse("fc", (700,), (2,))
    x = torch.zeros(1, 1, 700, dtype=torch.bfloat16)
    x[..., :600] = 1
    assert synaptic_ops(syn, x).tolist() == [[1200.0]]
