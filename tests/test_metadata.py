"""Cell metadata: lab units in, SI out, clear errors naming the key."""

from __future__ import annotations

import json

import pytest
import yaml

from cyclerflow.errors import InputError
from cyclerflow.schema import load_metadata, parse_metadata


def test_design_example_si_views(lipon_metadata):
    m = parse_metadata(lipon_metadata)
    assert m.cell_id == "W07-D12-C3" and m.wafer == "W07" and m.die == "D12"
    assert m.active_area_m2 == pytest.approx(0.0035e-4)
    assert m.nominal_capacity_ah == pytest.approx(0.35e-6)
    assert m.electrolyte_thickness_m == pytest.approx(1e-6)
    assert m.cathode_thickness_m == pytest.approx(1e-6)
    # cathode mass from density x thickness x area: 4.8 g/cm3 * 1e-4 cm * 0.0035 cm2
    assert m.cathode_mass_kg == pytest.approx(4.8 * 1e-4 * 0.0035 * 1e-3)
    assert [lay.role for lay in m.layers] == [
        "current_collector",
        "cathode",
        "electrolyte",
        "anode",
    ]


def test_mass_mg_wins_over_density(lipon_metadata):
    lipon_metadata["layers"][1]["mass_mg"] = 0.002
    assert parse_metadata(lipon_metadata).cathode_mass_kg == pytest.approx(2e-9)


def test_unknown_keys_are_kept(lipon_metadata):
    lipon_metadata["glovebox"] = "MBraun #2"
    lipon_metadata["layers"][2]["target"] = "Li3PO4"
    m = parse_metadata(lipon_metadata)
    assert m.extra == {"glovebox": "MBraun #2"}
    assert m.layers[2].model_extra == {"target": "Li3PO4"}


def test_strings_with_units_are_converted(lipon_metadata):
    lipon_metadata["active_area_cm2"] = "3.5 mm2"
    lipon_metadata["layers"][2]["thickness_um"] = "800 nm"
    lipon_metadata["layers"][1]["anneal_c"] = "973.15 K"
    m = parse_metadata(lipon_metadata)
    assert m.active_area_cm2 == pytest.approx(0.035)
    assert m.layers[2].thickness_um == pytest.approx(0.8)
    assert m.layers[1].anneal_c == pytest.approx(700.0)


@pytest.mark.parametrize(
    ("mutate", "key", "words"),
    [
        (
            lambda d: d["layers"][2].update(thickness_um=-1.0),
            "layers.2.thickness_um",
            "greater than 0",
        ),
        (lambda d: d.update(active_area_cm2=0), "active_area_cm2", "greater than 0"),
        (lambda d: d.update(active_area_cm2="2 V"), "active_area_cm2", "area"),
        (
            lambda d: d["layers"][1].update(thickness_um="1 mA"),
            "layers.1.thickness_um",
            "expected a length",
        ),
        (lambda d: d.pop("cell_id"), "cell_id", "required"),
        (lambda d: d["layers"][0].update(role="separator-ish"), "layers.0.role", "Input should be"),
    ],
)
def test_bad_metadata_names_the_key(lipon_metadata, mutate, key, words):
    mutate(lipon_metadata)
    with pytest.raises(InputError) as exc:
        parse_metadata(lipon_metadata, source="cell.yaml")
    msg = str(exc.value)
    assert msg.startswith("cell.yaml: ")
    assert f"'{key}'" in msg and words in msg


def test_missing_area_is_allowed_but_none(lipon_metadata):
    lipon_metadata.pop("active_area_cm2")
    m = parse_metadata(lipon_metadata)
    assert m.active_area_m2 is None and m.cathode_mass_kg is None


def test_load_yaml_and_json(tmp_path, lipon_metadata):
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump(lipon_metadata))
    j = tmp_path / "c.json"
    j.write_text(json.dumps(lipon_metadata))
    my, text = load_metadata(y)
    mj, _ = load_metadata(j)
    assert my == mj and "W07-D12-C3" in text


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_metadata(tmp_path / "nope.yaml")
    empty = tmp_path / "e.yaml"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_metadata(empty)
    broken = tmp_path / "b.yaml"
    broken.write_text("cell_id: [unclosed\n")
    with pytest.raises(InputError, match="cannot parse"):
        load_metadata(broken)
