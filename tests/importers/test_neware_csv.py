"""Neware BTSDA CSV exports (both header variants), built by the test with known values:
a 1 A h-scale cell charged at +0.5 A then discharged at -0.25 A, sampled every 10 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import CUT, FLIPS, damage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyclerflow.errors import InputError
from cyclerflow.importers import detect, neware_csv


def _hms(t: float, frac: bool) -> str:
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return (
        f"{int(h):02d}:{int(m):02d}:{s:06.3f}"
        if frac
        else f"{int(h):02d}:{int(m):02d}:{int(s):02d}"
    )


def _truth(cycles: int = 2):
    """Rows: rest 3, charge 6, rest 3, discharge 6 per cycle; step time and capacity reset per step."""
    rows = []
    t = 0.0
    step = 0
    for c in range(1, cycles + 1):
        for kind, name, i, n in [
            (0, "Rest", 0.0, 3),
            (1, "CC Chg", 0.5, 6),
            (0, "Rest", 0.0, 3),
            (-1, "CC DChg", -0.25, 6),
        ]:
            step += 1
            for k in range(n):
                rows.append(
                    dict(
                        c=c,
                        s=step,
                        name=name,
                        ts=10.0 * k,
                        t=t,
                        i=i,
                        v=3.5 + 0.01 * k * kind,
                        q=abs(i) * 10.0 * k / 3600.0,
                    )
                )
                t += 10.0
    return rows


def write_uA(path: Path, rows, frac: bool = True) -> None:
    head = "DataPoint,Cycle Index,Step Index,Step Type,Time,Total Time,Current(\xb5A),Voltage(mV),Capacity(mAs),Energy(mWs),Date\n"
    lines = [head]
    for n, r in enumerate(rows, 1):
        date = f"2024-03-01 10:{int(r['t'] // 60) % 60:02d}:{int(r['t'] % 60):02d}"
        lines.append(
            f"{n},{r['c']},{r['s']},{r['name']},{_hms(r['ts'], frac)},{_hms(r['t'], frac)},"
            f"{r['i'] * 1e6:.1f},{r['v'] * 1e3:.1f},{r['q'] * 3.6e6:.3f},{r['q'] * 3.5 * 3.6e6:.3f},{date}\n"
        )
    path.write_bytes("".join(lines).encode("latin-1"))


def write_A(path: Path, rows) -> None:
    head = (
        "DataPoint,Cycle Index,Step Index,Step Type,Time,Cumulative Time,Current(A),Voltage(V),"
        "Capacity(Ah),Chg. Cap.(Ah),DChg. Cap.(Ah),Energy(Wh),Date,Power(W),dQ/dV(mAh/V)\n"
    )
    lines = [head]
    for n, r in enumerate(rows, 1):
        chg = r["q"] if r["i"] > 0 else 0.0
        dchg = r["q"] if r["i"] < 0 else 0.0
        lines.append(
            f"{n},{r['c']},{r['s']},{r['name']},{_hms(r['ts'], False)},{_hms(r['t'], False)},"
            f"{r['i']:.8f},{r['v']:.4f},{r['q']:.9f},{chg:.9f},{dchg:.9f},{r['q'] * 3.5:.8f},"
            f"2022-05-18 16:27:52,{r['i'] * r['v']:.8f},0.0000\n"
        )
    path.write_text("".join(lines))


@pytest.mark.parametrize("variant", ["uA", "uA-int-seconds", "A"])
def test_both_variants_give_the_known_values(tmp_path: Path, variant: str) -> None:
    rows = _truth()
    p = tmp_path / "export.csv"
    if variant == "A":
        write_A(p, rows)
    else:
        write_uA(p, rows, frac=variant == "uA")
    assert detect(p) is neware_csv
    c = neware_csv.read(p)["cycling"]
    np.testing.assert_allclose(c["test_time_second"], [r["t"] for r in rows])
    np.testing.assert_allclose(c["step_time_second"], [r["ts"] for r in rows])
    np.testing.assert_allclose(c["current_ampere"], [r["i"] for r in rows], atol=1e-7)
    np.testing.assert_allclose(c["voltage_volt"], [r["v"] for r in rows], atol=1e-4)
    q = np.array([r["q"] for r in rows])
    i = np.array([r["i"] for r in rows])
    np.testing.assert_allclose(c["charge_capacity_ampere_hour"], np.where(i > 0, q, 0), atol=1e-8)
    np.testing.assert_allclose(
        c["discharge_capacity_ampere_hour"], np.where(i < 0, q, 0), atol=1e-8
    )
    # capacity at the end of each charge step = integral of the current (known: 0.5 A x 50 s)
    assert c["charge_capacity_ampere_hour"].max() == pytest.approx(0.5 * 50 / 3600, rel=1e-6)
    # our cycles (docs/importers-biologic-neware.md): +1 at a charge step after a discharge,
    # so the rest before the second charge still belongs to cycle 1
    first_chg2 = next(k for k, r in enumerate(rows) if r["c"] == 2 and r["i"] > 0)
    np.testing.assert_array_equal(
        c["cycle_count"], np.where(np.arange(len(rows)) < first_chg2, 1, 2)
    )
    np.testing.assert_array_equal(c["vendor_cycle_index"], [r["c"] for r in rows])
    np.testing.assert_array_equal(c["vendor_step_index"], [r["s"] for r in rows])
    assert c["step_count"][-1] == 8


def test_unknown_unit_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    write_A(p, _truth(1))
    p.write_text(p.read_text().replace("Current(A)", "Current(furlong)"))
    with pytest.raises(InputError, match=r"line 1\).*'Current\(furlong\)'.*unit 'furlong'"):
        neware_csv.read(p)


def test_sign_against_step_type_refused(tmp_path: Path) -> None:
    rows = _truth(1)
    for r in rows:
        r["i"] = -r["i"]
    p = tmp_path / "x.csv"
    write_A(p, rows)
    with pytest.raises(InputError, match=r"line 5\).*wrong sign for a charge step"):
        neware_csv.read(p)


def test_bad_time_and_short_row(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    write_A(p, _truth(1))
    lines = p.read_text().split("\n")
    lines[4] = lines[4].replace("00:00:30", "00:0x:30", 1)
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"line 5\).*not hh:mm:ss"):
        neware_csv.read(p)
    lines = p.read_text().split("\n")
    lines[4] = ",".join(lines[4].split(",")[:5])
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"line 5"):
        neware_csv.read(p)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=CUT,
    flips=FLIPS,
    a_variant=st.booleans(),
)
def test_fuzz(tmp_path: Path, cut: float, flips: list, a_variant: bool) -> None:
    p = tmp_path / "fuzz.csv"
    (write_A if a_variant else write_uA)(p, _truth(1))
    p.write_bytes(damage(p.read_bytes(), cut, flips))
    try:
        neware_csv.read(p)
    except InputError as e:
        assert str(p) in str(e)


def test_cli_import_bad_file_leaves_no_output(tmp_path: Path) -> None:
    from cyclerflow.cli import main

    src = tmp_path / "x.csv"
    rows = _truth(1)
    rows[5]["i"] = -0.5
    write_A(src, rows)
    out = tmp_path / "out.h5"
    assert main(["import", str(src), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    write_A(src, _truth(1))
    assert main(["import", str(src), "-o", str(out), "-q"]) == 0
    assert out.exists()


def test_unrecognised_step_names_and_fractional_counters_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    write_A(p, _truth(1))
    text = p.read_text()
    p.write_text(
        text.replace("CC Chg", "恒流充电").replace("CC DChg", "恒流放电"), encoding="utf-8"
    )
    with pytest.raises(InputError, match=r"no charge or discharge step among the step types"):
        neware_csv.read(p)
    lines = text.split("\n")
    fields = lines[3].split(",")
    fields[1] = "1.5"
    lines[3] = ",".join(fields)
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"line 4\).*'Cycle Index': 1.5 is not a whole number"):
        neware_csv.read(p)


def test_tab_separated_export_with_milli_units(tmp_path: Path) -> None:
    """BTSDA's .txt export: tabs, Current(mA), Chg./DChg. Cap.(mAh), Power(mW)."""
    rows = _truth(1)
    head = "DataPoint\tCycle Index\tStep Index\tStep Type\tTime\tTotal Time\tCurrent(mA)\tVoltage(V)\tChg. Cap.(mAh)\tDChg. Cap.(mAh)\tPower(mW)\n"
    lines = [head]
    for n, r in enumerate(rows, 1):
        chg = r["q"] * 1e3 if r["i"] > 0 else 0.0
        dchg = r["q"] * 1e3 if r["i"] < 0 else 0.0
        lines.append(
            f"{n}\t{r['c']}\t{r['s']}\t{r['name']}\t{_hms(r['ts'], True)}\t{_hms(r['t'], True)}\t"
            f"{r['i'] * 1e3:.4f}\t{r['v']:.4f}\t{chg:.6f}\t{dchg:.6f}\t{r['i'] * r['v'] * 1e3:.4f}\n"
        )
    p = tmp_path / "export.txt"
    p.write_text("".join(lines))
    assert detect(p) is neware_csv
    c = neware_csv.read(p)["cycling"]
    np.testing.assert_allclose(c["current_ampere"], [r["i"] for r in rows], atol=1e-7)
    np.testing.assert_allclose(c["power_watt"], [r["i"] * r["v"] for r in rows], atol=1e-7)
    q = np.array([r["q"] for r in rows])
    i = np.array([r["i"] for r in rows])
    np.testing.assert_allclose(
        c["discharge_capacity_ampere_hour"], np.where(i < 0, q, 0), atol=1e-9
    )


#: heads of BTSDA's other exports (layouts as in cellpy's nw_regular_export_ife_example.csv
#: and the 'Cycle ID, Step ID, Record ID' export other loaders map)
OTHER_EXPORTS = {
    # (the three-level export itself is read: test_neware_levels.py)
    "three-level without a record header": (
        "Cycle Index,Chg. Cap.(Ah),DChg. Cap.(Ah),Chg.-DChg. Eff(%),Chg. Energy(Wh)\n"
        ",Step Index,Step Number,Step Type,Step Time,Capacity(Ah),Energy(Wh)\n"
        ",,Record,Time,Total Time,Current(A),Voltage(V),Capacity(Ah),Energy(Wh),Date\n"
        "1,0.02256,0.33067,1465.46,0.10243\n,1,1,Rest,00:00:20,0.00000,0.00000\n"
        ",,1,00:00:00,00:00:00,0.00000,4.3185,0.000000000,0.00000,2026-03-06 12:37:25\n"
    ),
    "Record ID": (
        "Cycle ID,Step ID,Record ID,Time(h:min:s.ms),Voltage(V),Current(mA),Temperature(C),"
        "Capacity(mAh),Realtime\n1,1,1,0:00:00.000,3.1,0,25,0,2020-01-01 10:00:00\n"
    ),
    # layout of beep's tests/test_files/raw/neware_test.csv (Apache-2.0, 15.7 MB): every
    # value a quoted text starting with a tab (more tabs than commas in the header)
    "older BTS three-level": (
        'Cycle ID,"\tCap_Chg(mAh)","\tCap_DChg(mAh)","\tChg/DChg Efficiency(%)","\t"\n'
        ',"\tStep ID","\tStep Name","\tStep Time(h:min:s.ms)","\tCapacity(mAh)","\t",,,\n'
        ',,"\tRecord ID","\tTime(h:min:s.ms)","\tVoltage(V)","\tCurrent(mA)","\tRealtime","\t",,\n'
        '1,"\t1941.2","\t2439.3","\t125.658","\t"\n'
        ',"\t1","\tRest","\t0:00:10.000","\t0.0","\t",,,\n'
        ',,"\t1","\t0:00:00.000","\t3.5047","\t0.0","\t02/21/2020 10:32:49","\t",,\n'
    ),
}


@pytest.mark.parametrize("name", sorted(OTHER_EXPORTS))
def test_other_btsda_exports_are_refused_by_name(tmp_path: Path, name: str) -> None:
    from cyclerflow.cli import main
    from cyclerflow.importers import detect

    p = tmp_path / "export.csv"
    p.write_text(OTHER_EXPORTS[name])
    assert detect(p) is neware_csv
    with pytest.raises(InputError, match="which is not read: export the record layer"):
        neware_csv.read(p)
    assert main(["import", str(p), "-o", str(tmp_path / "x.h5"), "-q"]) == 2
    assert not (tmp_path / "x.h5").exists()


def _without_counters(src: Path, dst: Path) -> None:
    """The same export with 'Cycle Index' and 'Step Index' left out (BTSDA lets the
    user pick the exported columns)."""
    lines = src.read_bytes().split(b"\n")
    dst.write_bytes(
        b"\n".join(
            b",".join(f for k, f in enumerate(x.split(b",")) if k not in (1, 2)) for x in lines
        )
    )


def _read_both_paths(path: Path) -> list[dict]:
    with neware_csv._opened(path) as raw:
        return [
            neware_csv._assemble(path, neware_csv._ArrowSource(path, raw)),
            neware_csv._assemble(path, neware_csv._PandasSource(path, raw)),
        ]


@pytest.mark.parametrize("same_type_in_a_row", [False, True])
def test_export_without_cycle_and_step_index(tmp_path: Path, same_type_in_a_row: bool) -> None:
    rows = _truth(3)
    if same_type_in_a_row:  # each cycle's first rest named like the discharge before it
        for r in rows:
            if r["s"] % 4 == 1:
                r["name"] = "CC DChg"
    full, bare = tmp_path / "full.csv", tmp_path / "bare.csv"
    write_uA(full, rows)
    _without_counters(full, bare)
    assert detect(bare) is neware_csv
    want = neware_csv.read(full)["cycling"]
    for got in map(lambda d: d["cycling"], _read_both_paths(bare)):
        assert not {"vendor_cycle_index", "vendor_step_index", "step_index"} & set(got)
        assert set(got) | {"vendor_cycle_index", "vendor_step_index", "step_index"} == set(want)
        for name, v in got.items():
            np.testing.assert_array_equal(v, want[name], err_msg=name)
        # steps split where the step time starts again, even between two steps of one type
        np.testing.assert_array_equal(got["step_count"], [r["s"] for r in rows])


def test_a_date_without_time_of_day_gives_no_absolute_time(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text(
        "DataPoint,Step Type,Time,Total Time,Current(mA),Voltage(V),Capacity(mAh),Date\n"
        "1,Rest,00:00:00,25:00:00,0,3,0,2025-01-01\n"
        "2,CC Chg,00:00:01,25:00:02.5,1,3.1,0.001,2025-01-01\n"
        "3,CC Chg,00:00:02,25:00:03.5,1,3.2,0.002,2025-01-01\n",
        encoding="latin-1",
    )
    for data in [neware_csv.read(p), *_read_both_paths(p)]:
        assert "unix_time_second" not in data["cycling"]
        assert "no time of day" in data["warnings"][0] and "line 2" in data["warnings"][0]
        np.testing.assert_array_equal(
            data["cycling"]["test_time_second"], [90000, 90002.5, 90003.5]
        )
        np.testing.assert_array_equal(data["cycling"]["step_count"], [1, 2, 2])
