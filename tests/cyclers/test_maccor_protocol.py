"""Byte-level tests of every MacNet request the driver sends and every reply it reads.

Field names, their order and the example values of the replies follow the messages the
public client pymacnet documents from Maccor's MacNet help (docs/cyclers-maccor.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from cyclerflow.acquire.cycler import CyclerChannel, PolledCyclerChannel
from cyclerflow.acquire.recipe import loads_recipe
from cyclerflow.drivers import maccor_macnet as mn
from cyclerflow.drivers.sim import maccor_macnet as sim
from cyclerflow.errors import InputError, InstrumentError

from . import cycler_helpers

DRIVER = "maccor-macnet"
#: message coverage of this module (fixtures of cycler_helpers)
_cycler_exchanges = cycler_helpers._cycler_exchanges
message_coverage = cycler_helpers.message_coverage

PRE = b'{"jsonrpc":"2.0","method":"MacNet","params":{'

#: a status reply as the MacNet help documents it (channel 94 on the wire is Chan 93)
STATUS_REPLY = (
    b'{"jsonrpc":"2.0","result":{"FClass":4,"FNum":7,"Chan":93,"RF1":0,"RF2":192,"Stat":2,'
    b'"LastRecNum":4225,"Cycle":0,"Step":5,"TestTime":212.199996948242,'
    b'"StepTime":209.889999389648,"Capacity":0,"Energy":0,"Current":0,'
    b'"Voltage":3.85938811302185,"TesterTime":"2022-10-13T12:32:56"},"id":1987}\r\n'
)


def test_general_info_status_and_reset_requests():
    assert mn.general_info_request(7) == PRE + b'"FClass":1,"FNum":2,"Chan":-1},"id":7}'
    assert mn.status_request(94, 1987) == PRE + b'"FClass":4,"FNum":7,"Chan":93},"id":1987}'
    assert mn.reset_request(1, 3) == PRE + b'"FClass":6,"FNum":5,"Chan":0},"id":3}'


def test_start_request_carries_every_field_of_the_start_message():
    got = mn.start_request(4, "A1-cell", "FORM2C", 9, Crate=1.5e-05)
    assert got == PRE + (
        b'"FClass":6,"FNum":2,"Chan":3,"TestName":"A1-cell","ProcName":"FORM2C",'
        b'"Comment":"cyclerflow","Crate":1.5e-05,"ChamberNum":0,"StartCycle":0,"TotCycles":0,'
        b'"Mass":1,"VGain":0,"AbsTRepAlign":0,"ParallelR":0,"VDivHiR":0,"VDivLoR":0,'
        b'"CANpos":-1,"CANprof":"","RegimeName":""},"id":9}'
    )
    with pytest.raises(InputError, match="25 characters"):
        mn.start_request(1, "x" * 26, "P")


def test_status_reply_as_documented():
    r = mn.parse_status(mn.parse_reply(STATUS_REPLY, mn.STATUS))
    assert (r.stat, r.state, r.last_rec, r.cycle, r.step) == (2, "working", 4225, 0, 5)
    assert r.test_time_s == pytest.approx(212.199996948242)
    assert r.step_time_s == pytest.approx(209.889999389648)
    assert r.voltage_v == pytest.approx(3.85938811302185)
    assert (r.current_a, r.capacity_ah, r.energy_wh) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("stat", "state"),
    [(0, "stop"), (2, "working"), (3, "pause"), (4, "finish"), (5, "protect"), (9, "protect"),
     (7, "stop"), (12, "working")],
)  # fmt: skip
def test_stat_codes_map_to_states(stat, state):
    data = STATUS_REPLY.replace(b'"Stat":2', b'"Stat":%d' % stat)
    assert mn.parse_status(mn.parse_reply(data, mn.STATUS)).state == state


def test_result_replies_and_clock():
    ok = b'{"jsonrpc":"2.0","result":{"FClass":6,"FNum":2,"Chan":93,"Result":"OK"},"id":1987}\r\n'
    mn.parse_ok(mn.parse_reply(ok, mn.START), "start")
    bad = ok.replace(b'"OK"', b'"Test name exists"')
    with pytest.raises(InstrumentError, match="Test name exists"):
        mn.parse_ok(mn.parse_reply(bad, mn.START), "start")
    info = b'{"jsonrpc":"2.0","result":{"FClass":1,"FNum":2,"Chan":-1,"TestChannels":96},"id":1}'
    assert mn.parse_clock(mn.parse_reply(info + b"\r\n", mn.GENERAL_INFO)) == 1.0
    simmed = info.replace(b"96}", b'96,"SimClock":1000}')
    assert mn.parse_clock(mn.parse_reply(simmed, mn.GENERAL_INFO)) == 1000.0
    with pytest.raises(InstrumentError, match="clock"):
        mn.parse_clock(mn.parse_reply(info.replace(b"96}", b'96,"SimClock":"x"}'), (1, 2)))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not json\r\n", "unreadable"),
        (b'{"jsonrpc":"1.0","result":{}}\r\n', "JSON-RPC 2.0"),
        (b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"no"},"id":1}\r\n', "error"),
        (STATUS_REPLY.replace(b'"FNum":7', b'"FNum":4'), "expected a reply"),
        (STATUS_REPLY.replace(b'"Voltage":3.85938811302185', b'"Voltage":"--"'), "Voltage"),
    ],
)
def test_bad_replies_are_refused(data, match):
    with pytest.raises(InstrumentError, match=match):
        mn.parse_status(mn.parse_reply(data, mn.STATUS))


def test_resource_and_options():
    assert mn.parse_resource("TCPIP0::10.0.0.5::57570::SOCKET") == ("10.0.0.5", 57570)
    assert mn.parse_resource("TCPIP0::10.0.0.5::SOCKET") == ("10.0.0.5", 57570)
    with pytest.raises(InputError, match="TCPIP0::HOST::PORT::SOCKET"):
        mn.parse_resource("GPIB0::5::INSTR")
    with pytest.raises(InputError, match="unknown option"):
        mn.MaccorChannel("TCPIP0::h::1::SOCKET", unit=2)
    ch = mn.MaccorChannel("TCPIP0::h::1::SOCKET", channel=3, procedure="P")
    assert isinstance(ch, CyclerChannel) and isinstance(ch, PolledCyclerChannel)


RECIPE = """
name: m
limits: {voltage_max: 4.3 V, voltage_min: 2.9 V, current_max: 100 uA}
steps:
  - rest: {duration: 1 min}
  - loop:
      repeat: 3
      steps:
        - cc_charge: {current: 30 uA, until: {voltage: 4.2 V}}
        - cv_hold: {voltage: 4.2 V, until: {current: 3 uA}}
        - cc_discharge: {current: 30 uA, until: {voltage: 3.0 V}}
"""


def test_recipe_maps_to_procedure_steps():
    steps = mn.procedure_steps(loads_recipe(RECIPE))
    assert [(p.number, p.kind, p.type_name) for p in steps] == [
        (1, "rest", "rest"), (2, "cc", "cc"), (3, "cccv", "cccv"), (4, "cc", "dc"),
        (5, "loop", "cycle"), (6, "end", "end"),
    ]  # fmt: skip
    assert (steps[4].loop_start, steps[4].loop_count) == (2, 3)
    assert steps[3].current_a == pytest.approx(-30e-6) and steps[3].stop_voltage_v == 3.0
    assert steps[2].stop_current_a == pytest.approx(3e-6)


@pytest.mark.parametrize(
    ("step", "where"),
    [
        (
            "- eis: {f_start: 1 MHz, f_stop: 1 Hz, amplitude: 10 mV}",
            r"steps\[1\]\.loop\.steps\[1\]\.eis",
        ),
        ("- rest: {until: {voltage: 3.5 V}}", r"steps\[1\]\.loop\.steps\[1\]\.rest"),
    ],
)
def test_unmappable_steps_are_named(step, where):
    text = RECIPE.replace("- cv_hold: {voltage: 4.2 V, until: {current: 3 uA}}", step)
    recipe = loads_recipe(text)
    with pytest.raises(InputError, match=where):
        mn.check_recipe(recipe)


def test_numbering_gives_gap_free_ids_and_test_time():
    num = mn.Numbering()
    rd = mn.Reading

    def r(step, t, st):
        return rd(2, 0, 1, step, t, st, 0.0, 0.0, 1e-5, 3.7)

    for x in (r(1, 0.0, 0.0), r(1, 0.0, 0.0), r(1, 10.0, 10.0), r(2, 23.0, 2.0), r(2, 30.0, 9.0)):
        num.add(x)
    recs = num.records(1, 10, {1: "rest", 2: "cc"})
    assert recs.seq.tolist() == [1, 2, 3, 4]
    # step 2 counts from step 1's last reading (10 s): test time = 10 + step time
    assert recs.step_time_s.tolist() == [0.0, 10.0, 13.0, 20.0]
    assert recs.step_type.tolist() == ["rest", "rest", "cc", "cc"]
    assert num.records(3, 1, {}).seq.tolist() == [3]
    resumed = mn.Numbering(last_seq=50, ref_s=5.0, last_t=40.0)
    resumed.add(r(2, 60.0, 55.0))
    assert resumed.records(51, 5, {}).seq.tolist() == [51]
    assert resumed.records(51, 5, {}).step_time_s.tolist() == [55.0]


def test_simulator_answers_each_request_byte_for_byte():
    s = sim.MacNetSim(channels=2, speedup=50.0)
    try:
        info = s.handle(mn.general_info_request(1))
        assert info.endswith(b"\r\n") and info.startswith(b'{"jsonrpc":"2.0","result":{"FClass":1')
        assert mn.parse_clock(mn.parse_reply(info, mn.GENERAL_INFO)) == 50.0
        st = mn.parse_status(mn.parse_reply(s.handle(mn.status_request(2, 5)), mn.STATUS))
        assert (st.stat, st.test_time_s) == (0, 0.0)
        refused = mn.parse_reply(s.handle(mn.start_request(1, "t", "NOPE")), mn.START)
        assert refused["Result"].startswith("procedure not found")
        assert (
            s.handle(b'{"jsonrpc":"2.0","method":"MacNet","params":{"FClass":9,"FNum":9}}')[:40]
            == b'{"jsonrpc":"2.0","error":{"code":-32601,'
        )
        assert b'"Result":"no channel 7"' in s.handle(mn.status_request(8))
        assert b"-32700" in s.handle(b"{garbage")
    finally:
        s.stop()


def test_request_splitting_handles_partial_and_joined_objects():
    a, b = mn.status_request(1, 1), mn.reset_request(2, 2)
    reqs, rest = sim.split_requests(a + b"\r\n" + b + a[:10])
    assert reqs == [a, b] and rest == a[:10]
    reqs, rest = sim.split_requests(rest + a[10:])
    assert reqs == [a] and rest == b""
    assert np.array_equal(sim.split_requests(b"  xx")[0], [b"xx"])


def test_simulator_takes_per_channel_cells_from_a_rack_file(tmp_path):
    from .cycler_helpers import CELL

    text = CELL.read_text()
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(
        text.replace("nominal_capacity_uah: 15", "nominal_capacity_uah: 40")
    )
    (tmp_path / "rack.yaml").write_text("channels: {2: b.yaml}\ndefault: a.yaml\n")
    s = sim.MacNetSim(channels=3, cell=tmp_path / "rack.yaml")
    try:
        caps = [s.channel(n).model.params.capacity_ah for n in (1, 2, 3)]
        assert caps == pytest.approx([15e-6, 40e-6, 15e-6])
    finally:
        s.stop()


def test_channel_beyond_the_servers_channels_is_refused_on_connect():
    s = sim.MacNetSim(channels=2).start()
    ch = mn.MaccorChannel(s.resource, channel=3, procedure="P")
    try:
        with pytest.raises(InstrumentError, match="has 2 channels, not channel 3"):
            ch.connect()
    finally:
        ch.close()
        s.stop()


def test_every_message_is_covered_and_its_numbers_have_units(message_coverage):
    """Runs last: every message's builder and parser ran in this module, and every
    numeric field they carried declares a unit in the driver's FIELD_UNITS."""
    uncovered, no_units = message_coverage()
    assert uncovered == [], f"messages no test here exercised: {uncovered}"
    assert no_units == [], f"numeric fields without units: {no_units}"
