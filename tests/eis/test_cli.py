import json

import numpy as np
import yaml

from cyclerflow.cli import main

from .synth import lipon_spectrum

F = np.logspace(6, -1, 50)


def write_long_csv(path, temps, rng, area=0.0035):
    lines = [
        "frequency_hertz,real_impedance_ohm,imaginary_impedance_ohm,spectrum_id,temperature_kelvin"
    ]
    for sid, t in enumerate(temps, start=1):
        _, z = lipon_spectrum(F, t, area, rng)
        lines += [
            f"{a:.17g},{b.real:.17g},{b.imag:.17g},{sid},{t}" for a, b in zip(F, z, strict=True)
        ]
    path.write_text("\n".join(lines) + "\n")


def test_fit_eis_json_with_cell_metadata(tmp_path, capsys, lipon_metadata):
    src = tmp_path / "film.csv"
    write_long_csv(src, (263.15, 283.15, 298.15, 313.15), np.random.default_rng(1))
    meta = tmp_path / "cell.yaml"
    meta.write_text(yaml.safe_dump(lipon_metadata))
    assert main(["fit-eis", str(src), "--json", "--cell", str(meta)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["spectra"]) == 4 and all(s["fit_ok"] for s in out["spectra"])
    assert abs(out["arrhenius"]["activation_energy_ev"] - 0.55) < 0.02
    assert abs(out["arrhenius"]["conductivity_25c_s_per_cm"] / 2.3e-6 - 1) < 0.05


def test_fit_eis_table(tmp_path, capsys):
    src = tmp_path / "film.csv"
    write_long_csv(src, (298.15,), np.random.default_rng(2))
    assert main(["fit-eis", str(src), "--circuit", "blocking"]) == 0
    text = capsys.readouterr().out
    assert "blocking" in text and "fit" in text and "no cell metadata" in text


def test_fit_eis_bad_inputs_exit_2(tmp_path, capsys):
    src = tmp_path / "film.csv"
    write_long_csv(src, (298.15,), np.random.default_rng(3))
    assert main(["fit-eis", str(src), "--circuit", "R0-p(R1,X1)"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "film.csv" in err and "unknown element 'X1'" in err
    assert main(["fit-eis", str(tmp_path / "missing.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["fit-eis", str(src), "--weighting", "square"]) == 2
    assert "unknown weighting" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.csv"]  # nothing written


def test_fit_eis_and_analyze_on_cell_file(tmp_path, capsys, lipon_metadata):
    from cyclerflow.analysis import analyze_cell, load_results
    from cyclerflow.schema import parse_metadata
    from cyclerflow.store import write_cell

    rng = np.random.default_rng(4)
    spectra = []
    for t in (263.15, 283.15, 298.15, 313.15, 363.15):
        _, z = lipon_spectrum(F, t, 0.0035, rng)
        spectra.append(
            {
                "frequency_hertz": F,
                "real_impedance_ohm": z.real,
                "imaginary_impedance_ohm": z.imag,
                "temperature_kelvin": t,
            }
        )
    cell = tmp_path / "film.h5"
    write_cell(cell, parse_metadata(lipon_metadata), spectra=spectra)
    assert main(["fit-eis", str(cell), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["method"] for s in out["spectra"]] == ["fit"] * 4 + ["fixed_capacitance"]
    assert abs(out["arrhenius"]["activation_energy_ev"] - 0.55) < 0.02
    # the lead's `analyze` writes our Dataset into the results file
    res = analyze_cell(cell, out=tmp_path / "film.results.nc")
    ev = res["eis"]["spectra"][0]["role_evidence"]  # analyze --json carries the evidence
    assert ev["arcs"][0]["role"] == "bulk" and ev["arcs"][0]["range"] == "bulk"
    assert set(ev["arcs"][0]) >= {"capacitance_farad", "f_peak_hertz", "range"}
    n_in = sum(s["in_arrhenius"] for s in res["eis"]["spectra"])
    assert res["eis"]["arrhenius"]["n_points"] == n_in >= 4
    assert all(s["in_arrhenius"] for s in res["eis"]["spectra"][:4])
    summary, groups = load_results(tmp_path / "film.results.nc")
    assert (
        groups["eis"].sizes["spectrum"] == 5
        and summary["eis"]["spectra"][4]["method"] == "fixed_capacitance"
    )


def test_fit_eis_all_spectra_bad_exits_2(tmp_path, capsys):
    src = tmp_path / "short.csv"
    rows = ["frequency_hertz,real_impedance_ohm,imaginary_impedance_ohm"]
    rows += [f"{f:.6g},{100 + i},{-10 - i}" for i, f in enumerate(np.logspace(5, 0, 6))]
    src.write_text("\n".join(rows) + "\n")
    assert main(["fit-eis", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "short.csv" in err and "at least 10" in err


def test_fit_eis_fix_and_bounds(tmp_path, capsys):
    src = tmp_path / "film.csv"
    write_long_csv(src, (298.15,), np.random.default_rng(5))
    args = ["fit-eis", str(src), "--circuit", "blocking", "--json"]
    assert main([*args, "--fix", "CPE1_1=0.9", "--bounds", "R1=0:1e9"]) == 0
    row = json.loads(capsys.readouterr().out)["spectra"][0]
    assert row["params"]["CPE1_1"] == 0.9 and row["fixed"] == ["CPE1_1"] and row["fit_ok"]
    for bad, what in (
        (["--fix", "CPE1_1"], "expected NAME=VALUE"),
        (["--fix", "CPE1_1=abc"], "is not a number"),
        (["--bounds", "R1=5:1"], "is not below upper"),
        (["--bounds", "R1=0-5"], "expected NAME=LO:HI"),
        (["--fix", "R7=3"], "'R7' is not in circuit"),
    ):
        assert main([*args, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err, err


def test_fit_eis_global(tmp_path, capsys):
    src = tmp_path / "film.csv"
    write_long_csv(src, (263.15, 283.15, 298.15, 313.15), np.random.default_rng(6))
    assert main(["fit-eis", str(src), "--json", "--global"]) == 0
    out = json.loads(capsys.readouterr().out)
    g = out["global_fit"]
    assert g["circuit"] == "R0-p(R1,CPE1)-CPE2"
    # the film's arc keeps its shape: its capacitance and exponent are shared
    assert {"CPE1_C", "CPE1_1"} <= set(g["shared"]) and g["sharing"]
    assert abs(g["arrhenius"]["activation_energy_ev"] - 0.55) < 0.02
    assert main(["fit-eis", str(src), "--global"]) == 0
    assert "global fit" in capsys.readouterr().out


def test_fit_eis_bad_sample_type_exits_2(tmp_path, capsys, lipon_metadata):
    src = tmp_path / "film.csv"
    write_long_csv(src, (298.15,), np.random.default_rng(7))
    meta = tmp_path / "cell.yaml"
    meta.write_text(yaml.safe_dump({**lipon_metadata, "sample_type": "pellets"}))
    assert main(["fit-eis", str(src), "--cell", str(meta)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sample_type: 'pellets' is not one of" in err
