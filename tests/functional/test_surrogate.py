import pytest
import torch

from ttfs_lab.functional.surrogate import SURROGATES, heaviside


@pytest.mark.parametrize("name", SURROGATES.names())
@pytest.mark.parametrize("alpha", [2.0, 4.0, 10.0])
def test_surrogate_is_a_unit_area_bump_peaked_at_zero(name, alpha):
    x = torch.linspace(-60, 60, 240_001, dtype=torch.float64)
    g = SURROGATES[name](x.clone(), alpha)
    area = torch.trapezoid(g, x).item()
    assert area == pytest.approx(1.0, abs=2e-2 if name == "atan" else 1e-3)  # atan has heavy tails
    assert g.argmax().item() == 120_000
    assert (g >= 0).all()


def test_heaviside_forward_is_step_and_backward_is_surrogate():
    x = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    y = heaviside(x, "triangle", 1.0)
    y.sum().backward()
    assert y.tolist() == [0.0, 1.0, 1.0]
    assert x.grad.tolist() == [0.0, 1.0, 0.5]
