import numpy as np
import pytest
from impedance.models.circuits import CustomCircuit

from cyclerflow.eis import parse_circuit
from cyclerflow.errors import InputError

F = np.logspace(6, -2, 40)
CASES = [
    ("R0-p(R1,CPE1)-CPE2", [10, 1e3, 1e-9, 0.9, 1e-6, 0.8]),
    ("R0-p(R1,C1)-p(R2-Wo1,C2)", [0.01, 0.01, 100, 0.01, 0.05, 100, 1]),
    (
        "L1-R0-p(R1,Zarc1)-Ws1-La1-G1-K1-W1",
        [1e-6, 2, 3, 4, 1e-3, 0.8, 5, 2, 1e-6, 0.7, 3, 1e-2, 5, 1e-3, 2],
    ),
    ("R0-p(R1,CPE1)-Gs1", [1, 2, 1e-3, 0.9, 3, 1e-2, 0.5]),
]


@pytest.mark.parametrize(("circuit", "params"), CASES)
def test_impedance_matches_impedance_py(circuit, params):
    ours = parse_circuit(circuit).impedance(params, F)
    with pytest.warns(UserWarning):
        ref = CustomCircuit(circuit, initial_guess=params).predict(F, use_initial=True)
    assert np.max(np.abs(ours - ref) / np.abs(ref)) < 1e-12


@pytest.mark.parametrize(("circuit", "params"), CASES)
def test_analytic_jacobian_matches_finite_differences(circuit, params):
    c = parse_circuit(circuit)
    z0, jac = c.impedance_and_jacobian(params, 2 * np.pi * F)
    for i in range(len(params)):
        q = np.array(params, float)
        h = 1e-6 * q[i]
        q[i] += h
        d = (c.impedance(q, F) - z0) / h
        scale = np.abs(z0) / abs(params[i])
        assert np.max(np.abs(d - jac[i]) / scale) < 1e-4, c.param_names[i]


def test_parameter_names_follow_impedance_py():
    c = parse_circuit("R0 - p(R1, CPE1) - Wo1")
    assert c.param_names == ("R0", "R1", "CPE1_0", "CPE1_1", "Wo1_0", "Wo1_1")
    assert list(c.exponent_mask) == [False, False, False, True, False, False]


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("R0-p(R1,Q1)", "unknown element 'Q1'"),
        ("R0-p(R1,CPE1", "expected ',' or ')'"),
        ("R0--R1", "expected an element name"),
        ("R0-R0", "appears twice"),
        ("R0-p(R1)", "at least two branches"),
        ("", "empty"),
        ("R0-p(R1,C1))", "unexpected ')'"),
    ],
)
def test_bad_circuit_strings(bad, what):
    with pytest.raises(InputError, match="circuit") as ei:
        parse_circuit(bad)
    assert what in str(ei.value)


def test_wrong_parameter_count():
    with pytest.raises(InputError, match="takes 6 parameters"):
        parse_circuit("R0-p(R1,CPE1)-CPE2").impedance([1, 2, 3], F)
