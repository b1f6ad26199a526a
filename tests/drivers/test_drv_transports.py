"""Transports over real ptys and sockets: lines, timeouts, lost links, resource routing."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from cyclerflow.drivers.transports import (
    SerialTransport,
    VisaTransport,
    is_serial_resource,
    open_transport,
    serial_port_of,
)
from cyclerflow.errors import InstrumentError


def test_resource_routing():
    assert isinstance(open_transport("socket://127.0.0.1:1", name="x"), SerialTransport)
    assert isinstance(open_transport("/dev/ttyUSB0", name="x"), SerialTransport)
    assert isinstance(open_transport("ASRL/dev/ttyUSB0::INSTR", name="x"), SerialTransport)
    assert isinstance(
        open_transport("TCPIP0::10.0.0.5::5025::SOCKET", name="x", baudrate=9600), VisaTransport
    )
    assert isinstance(open_transport("GPIB0::18::INSTR", name="x"), VisaTransport)
    assert serial_port_of("ASRL/dev/ttyUSB0::INSTR") == "/dev/ttyUSB0"
    assert serial_port_of("ASRL3::INSTR") == "COM3"
    assert not is_serial_resource("USB0::0x05E6::0x2450::04451117::INSTR")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="ptys are POSIX")
def test_pty_line_exchange_and_timeout():
    master, slave = os.openpty()
    path = os.ttyname(slave)

    def instrument():
        data = b""
        while b"\r\n" not in data:
            data += os.read(master, 100)
        assert data == b"KRDG? A\r\n"
        os.write(master, b"+300.125\r\n")

    th = threading.Thread(target=instrument, daemon=True)
    th.start()
    t = SerialTransport(
        path,
        name="lakeshore335",
        timeout_s=0.3,
        write_termination="\r\n",
        baudrate=57600,
        bytesize=7,
        parity="O",
    )
    t.open()
    try:
        assert t.query("KRDG? A") == "+300.125"
        th.join(2)
        with pytest.raises(
            InstrumentError,
            match=rf"lakeshore335 \({path}\): 'SETP\? 1': no reply within 0.3 s \(timeout\)",
        ):
            t.query("SETP? 1")
    finally:
        t.close()
        os.close(master)
        os.close(slave)


def test_socket_serial_partial_lines_and_lost_link():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def instrument():
        conn, _ = srv.accept()
        conn.recv(100)
        conn.sendall(b"P1;")  # a line in two pieces, then two lines at once
        conn.sendall(b"2\nA\nB\n")
        conn.recv(100)
        conn.close()

    th = threading.Thread(target=instrument, daemon=True)
    th.start()
    t = SerialTransport(f"socket://127.0.0.1:{port}", name="palmsens", timeout_s=1.0)
    t.open()
    try:
        assert t.query("e") == "P1;2"
        th.join(0.2)
        assert t.read_line() == "A"
        assert t.read_available() == ["B"]
        t.write("Z")
        th.join(2)
        with pytest.raises(InstrumentError, match="palmsens .*'Z'"):
            t.read_line("Z", 0.3)
    finally:
        t.close()
        srv.close()


def test_open_failures_name_the_resource():
    t = open_transport("TCPIP0::127.0.0.1::1::SOCKET", name="keithley2450", timeout_s=0.5)
    # pyvisa-py connects a SOCKET resource lazily: the refusal shows on the first command
    with pytest.raises(
        InstrumentError,
        match=r"keithley2450 \(TCPIP0::127.0.0.1::1::SOCKET\): (cannot open|'\*IDN\?': connection lost).*refused",
    ):
        t.open()
        t.query("*IDN?")
    t.close()
    with pytest.raises(InstrumentError, match=r"palmsens \(/dev/nonexistent-tty\): cannot open"):
        open_transport("/dev/nonexistent-tty", name="palmsens").open()


def test_use_before_open_is_an_error():
    t = SerialTransport("socket://127.0.0.1:1", name="x")
    with pytest.raises(InstrumentError, match="not connected"):
        t.write("*IDN?")
    v = VisaTransport("TCPIP0::127.0.0.1::1::SOCKET", name="y")
    with pytest.raises(InstrumentError, match="y .*'\\*IDN\\?': not connected"):
        v.query("*IDN?")
